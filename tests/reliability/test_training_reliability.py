"""radconf_train and train(): every argument checked before anything is written, a failed start leaves
nnUNet_results as it found it, corrupt checkpoints are named with the way out, and ``--c`` resumes with the run's own
settings (epochs, iterations, learning-rate schedule).

Nothing here trains except one resumed epoch of the session's organ model (1 epoch x 2 iterations, fold all)."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from radconf.cli import train
from radconf.errors import InvalidInput
from radconf.nnunet_compat.checkpoints import SETTINGS_FILE, safe_load_checkpoint
from radconf.training import TrainingOptions
from tests.conftest import DATASET_ID, ORGAN_TRAINER, PLANS

BASE = [str(DATASET_ID), "3d_fullres", "0", "-p", PLANS, "-device", "cpu"]
ORGAN = [str(DATASET_ID), "3d_fullres", "all", "-tr", ORGAN_TRAINER, "-p", PLANS, "-device", "cpu"]


def tree(folder: Path) -> dict[str, str]:
    """Every file (with its hash) and folder under ``folder``: an empty folder left behind counts."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def refused(argv: list[str], capsys, *fragments: str) -> str:
    """``radconf_train argv`` exits 2 with one ``radconf: error:`` line holding every fragment, no traceback."""
    code = train.main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("radconf: error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, err)
    return errors[0]


@pytest.fixture
def trainers(monkeypatch) -> list:
    """The trainers train() restores a checkpoint into, and no training loop: ``run_training`` is recorded only."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    import radconf.training

    seen: list = []
    restore = radconf.training.restore_trainer_state

    def recording_restore(trainer, checkpoint):
        seen.append(trainer)
        restore(trainer, checkpoint)

    monkeypatch.setattr(radconf.training, "restore_trainer_state", recording_restore)
    monkeypatch.setattr(nnUNetTrainer, "run_training", lambda self: seen.append(("run_training", self)))
    return seen


# --------------------------------------------------------------------------------- values, before any work
@pytest.mark.parametrize("extra, flag", [
    (["--epochs", "0"], "--epochs"), (["--epochs", "-2"], "--epochs"), (["--epochs", "1.5"], "--epochs"),
    (["--iterations_per_epoch", "0"], "--iterations_per_epoch"), (["--iterations-per-epoch", "-1"], "--iterations"),
    (["--seed", "-1"], "--seed"), (["--seed", str(2**32)], "--seed"),
    (["--ce_weights", "nan", "1"], "--ce_weights"), (["--ce_weights", "-1", "1"], "--ce_weights"),
    (["--distance_weight", "nan"], "--distance_weight"), (["--distance_weight", "-0.5"], "--distance_weight"),
    (["--distance_weight", "inf"], "--distance_weight"), (["-device", "tpu"], "-device"),
])
def test_bad_values_are_refused_by_the_parser(nnunet_dirs, capsys, extra, flag):
    with pytest.raises(SystemExit) as exit_info:
        train.main([*BASE, *extra])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and flag in err and "Traceback" not in err, err
    assert tree(nnunet_dirs["nnUNet_results"]) == {}


@pytest.mark.parametrize("options, flag", [
    ({"epochs": 0}, "--epochs"), ({"epochs": True}, "--epochs"), ({"iterations_per_epoch": -1}, "--iterations"),
    ({"seed": -1}, "--seed"), ({"settings": {"distance_weight": float("nan")}}, "--distance_weight"),
    ({"settings": {"class_weights": [0.0, 0.0]}}, "--ce_weights"),
    ({"settings": {"class_weights": [1.0, float("inf")]}}, "--ce_weights"),
])
def test_the_library_refuses_the_same_values(options, flag):
    with pytest.raises(InvalidInput, match=flag):
        TrainingOptions(**options)


def test_an_all_zero_weight_list_is_one_line(nnunet_dirs, capsys):
    refused([*BASE, "-tr", "WeightedCELossTrainer", "--ce_weights", "0", "0"], capsys, "--ce_weights", "positive sum")
    assert tree(nnunet_dirs["nnUNet_results"]) == {}


@pytest.mark.parametrize("fold", ["-1", "x", "1.0", "²"])
def test_a_bad_fold_says_what_folds_are(nnunet_dirs, capsys, fold):
    argv = [*BASE]
    argv[2] = fold
    line = refused(argv, capsys, "Fold must be 'all' or a fold number", "beyond the splits", repr(fold))
    assert "0-4 or 'all'" not in line


@pytest.mark.parametrize("extra, fragment", [
    (["--c", "--val"], "pass one of them"), (["--val", "-pretrained_weights", "w.pth"], "-pretrained_weights"),
    (["--val", "--no_val"], "--no_val"), (["--npz", "--no-val"], "--npz"), (["--val_best", "--no_val"], "--val_best"),
    (["--val_best", "--disable_checkpointing"], "--disable_checkpointing"),
    (["--change_settings"], "use it with --c"),
])
def test_flags_that_exclude_each_other(nnunet_dirs, capsys, extra, fragment):
    refused([*BASE, *extra], capsys, fragment)
    assert tree(nnunet_dirs["nnUNet_results"]) == {}


# ------------------------------------------------------------------------- failed starts leave nothing behind
def _truncated_checkpoint(folder: Path) -> Path:
    path = folder / "pretrained.pth"
    torch.save({"network_weights": {"w": torch.ones(64, 64)}}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("case", ["unpreprocessed", "ce_count", "val_without_final", "pretrained_missing",
                                  "pretrained_truncated", "pretrained_not_a_checkpoint", "no_cuda", "plans",
                                  "configuration"])
def test_a_failed_start_leaves_results_as_found(planned_phantom, nnunet_dirs, capsys, monkeypatch, tmp_path, case):
    not_a_checkpoint = tmp_path / "weights.pth"
    torch.save({"state_dict": {}}, not_a_checkpoint)
    argv, fragments = {
        "unpreprocessed": ([str(DATASET_ID), "2d", "0", "-p", PLANS], ["not preprocessed", "-c 2d"]),
        "ce_count": ([*BASE, "-tr", "WeightedCELossTrainer", "--ce_weights", "1"],
                     ["--ce_weights takes 5 weights", "background, bladder"]),
        "val_without_final": ([*BASE, "--val"], ["checkpoint_final.pth", "train the fold first"]),
        "pretrained_missing": ([*BASE, "-pretrained_weights", str(tmp_path / "none.pth")], ["-pretrained_weights"]),
        "pretrained_truncated": ([*BASE, "-pretrained_weights", str(_truncated_checkpoint(tmp_path))],
                                 ["pretrained.pth is corrupt", "Copy it again"]),
        "pretrained_not_a_checkpoint": ([*BASE, "-pretrained_weights", str(not_a_checkpoint)],
                                        ["not an nnU-Net checkpoint"]),
        "no_cuda": ([*BASE[:-1], "cuda"], ["-device cuda", "torch sees no CUDA GPU"]),
        "plans": ([str(DATASET_ID), "3d_fullres", "0", "-p", "NoSuchPlans"], ["radconf_plan_and_preprocess"]),
        "configuration": ([str(DATASET_ID), "4d_fancy", "0", "-p", PLANS], ["available: 2d, 3d_fullres"]),
    }[case]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = tree(nnunet_dirs["nnUNet_results"])
    line = refused(argv, capsys, *fragments)
    assert "untrusted" not in line and "trust" not in line
    assert tree(nnunet_dirs["nnUNet_results"]) == before


def test_a_trainer_refusing_its_settings_while_it_initialises_leaves_nothing(planned_phantom, nnunet_dirs, capsys,
                                                                             monkeypatch):
    from radconf.trainers.loss_variants import WeightedCELossMixin

    def refuse(self):
        raise InvalidInput("class weights refused while the trainer initialises")

    monkeypatch.setattr(WeightedCELossMixin, "_resolve_class_weights", refuse)
    refused([*BASE, "-tr", "WeightedCELossTrainer", "--epochs", "1"], capsys, "refused while the trainer")
    assert tree(nnunet_dirs["nnUNet_results"]) == {}


# ----------------------------------------------------------------------------------- names and where to list them
def test_an_unknown_trainer_shows_close_matches_and_how_to_list_all(nnunet_dirs, capsys):
    line = refused([*BASE, "-tr", "nnUNetTrainerNoDa"], capsys, "Unknown trainer 'nnUNetTrainerNoDa'",
                   "Did you mean nnUNetTrainerNoDA", "radconf_train --list_trainers")
    assert len(line) < 400 and line.count("nnUNetTrainer") <= 7  # the given name, <= 5 matches, the hint
    line = refused([*BASE, "-tr", "Qwertz"], capsys, "No name is close", "--list_trainers")
    assert tree(nnunet_dirs["nnUNet_results"]) == {}


def test_list_trainers_prints_every_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--list_trainers"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "  WeightedCELossTrainer  - " in out and "\n  nnUNetTrainer_5epochs\n" in out


def test_an_unknown_planner_says_how_to_list_planners():
    from radconf.registry import find_class

    with pytest.raises(InvalidInput, match=r"Did you mean CPUPresetPlanner.*available_names\('planner'\)"):
        find_class("CPUPresetPlaner", "planner")


def test_flags_in_nnunet_spelling_with_the_old_aliases():
    parser = train.build_parser()
    new = parser.parse_args(["1", "2d", "0", "--iterations_per_epoch", "3", "--no_val"])
    old = parser.parse_args(["1", "2d", "0", "--iterations-per-epoch", "3", "--no-val"])
    assert new == old and (new.iterations_per_epoch, new.no_val) == (3, True)
    options = train.training_options(parser.parse_args(["1", "2d", "0", "--val_best", "--c", "--change_settings"]))
    assert options.validate_with_best and options.change_settings
    text = " ".join(parser.format_help().split())
    assert "(default: nnUNetTrainer)" in text and "(default: nnUNetPlans)" in text


# ------------------------------------------------------------------------------------------------ folds
def test_a_fold_beyond_the_splits_says_what_nnunet_does(planned_phantom, trainers, capsys):
    from radconf.training import train as train_fold

    folder = train_fold(DATASET_ID, "3d_fullres", 7, plans=PLANS, device="cpu",
                        options=TrainingOptions(epochs=1, iterations_per_epoch=1, validate=False))
    out = capsys.readouterr().out
    assert "fold 7 is beyond the 5 splits" in out and "seeded with 12345 + 7 = 12352" in out
    assert "random 80:20 split of the 5 cases (4 training, 1 validation)" in out
    (_, trainer), = trainers
    train_keys, val_keys = trainer.do_split()  # what nnU-Net does, as said
    assert (len(train_keys), len(val_keys)) == (4, 1) and folder.name == "fold_7"


# ------------------------------------------------------------------------------------------- checkpoints
def test_a_damaged_checkpoint_is_corrupt_not_untrusted(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {"w": torch.ones(256, 256)}}, path)
    (tmp_path / "checkpoint_best.pth").write_bytes(path.read_bytes())
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # bytes changed in place: torch alone loads it
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match=r"checkpoint_final.pth is corrupt \(.*checksum\).*checkpoint_best.pth"):
        safe_load_checkpoint(path)


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    from radconf.nnunet_compat.checkpoints import check_checkpoint_origin

    checkpoint = {"trainer_name": "nnUNetTrainerNoDA", "init_args": {"plans": {"plans_name": PLANS},
                                                                     "configuration": "3d_fullres"}}
    check_checkpoint_origin(checkpoint, tmp_path / "checkpoint_final.pth", "nnUNetTrainerNoDA", PLANS, "3d_fullres")
    with pytest.raises(InvalidInput, match=r"trainer \(-tr\) 'nnUNetTrainerNoDA', not 'nnUNetTrainer'; plans \(-p\) "
                                           r"'radconfCPUPlans', not 'nnUNetPlans'.*copied or renamed"):
        check_checkpoint_origin(checkpoint, tmp_path / "checkpoint_final.pth", "nnUNetTrainer", "nnUNetPlans",
                                "3d_fullres")


def test_a_new_training_does_not_overwrite_a_trained_fold(organ_model, capsys):
    before = tree(organ_model.fold)
    refused([*ORGAN, "--epochs", "1", "--iterations-per-epoch", "2", "--no-val"], capsys,
            "already holds checkpoint_final.pth", "--c", "--val",
            "move the folder away")
    assert tree(organ_model.fold) == before


@pytest.mark.parametrize("mode, fragments", [
    ("--c", ["checkpoint_final.pth is corrupt", "checkpoint_best.pth", "rename it"]),
    ("--val", ["checkpoint_final.pth is corrupt", "--val --val_best"]),
])
def test_a_truncated_checkpoint_names_the_other_one(organ_model, capsys, mode, fragments):
    final = organ_model.fold / "checkpoint_final.pth"
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])
    before = tree(organ_model.fold)
    line = refused([*ORGAN, mode], capsys, *fragments)
    assert "trust" not in line
    assert tree(organ_model.fold) == before


def test_c_without_a_checkpoint_names_the_runs_that_have_one(organ_model, trainers):
    with pytest.warns(UserWarning, match=rf"holds no checkpoint.*starting a new training.*-tr {ORGAN_TRAINER} "
                                         rf"-p {PLANS}"):
        assert train.main([str(DATASET_ID), "3d_fullres", "all", "-p", PLANS, "-device", "cpu", "--c", "--epochs",
                           "1", "--no_val"]) == 0


def _validated_weights(monkeypatch) -> list[dict]:
    """The network weights each final validation runs with (the validation itself is skipped)."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    validated: list[dict] = []

    def record(self, npz):
        validated.append({k: v.clone() for k, v in self.network.state_dict().items()})

    monkeypatch.setattr(nnUNetTrainer, "perform_actual_validation", record)
    return validated


def test_val_best_validates_checkpoint_best(organ_model, capsys, monkeypatch):
    best_path = organ_model.fold / "checkpoint_best.pth"
    best = safe_load_checkpoint(best_path)
    best["network_weights"] = {k: v + 1 if v.is_floating_point() else v for k, v in best["network_weights"].items()}
    torch.save(best, best_path)  # tell it from checkpoint_final
    validated = _validated_weights(monkeypatch)
    assert train.main([*ORGAN, "--val", "--val_best"]) == 0
    assert "--val validates" in capsys.readouterr().out
    (weights,) = validated
    assert all(torch.equal(weights[k], best["network_weights"][k]) for k in weights)


# ------------------------------------------------------------------------------- --c keeps the run's settings
def test_c_resumes_a_finished_run_with_its_own_settings(organ_model, trainers, capsys):
    """The organ model ran 1 epoch of 2 iterations: --c without --epochs keeps 1 epoch (the poly learning rate's
    num_epochs with it) and trains nothing, instead of continuing at epoch 1 of nnU-Net's default 1000."""
    before = tree(organ_model.fold)
    assert train.main([*ORGAN, "--c", "--no-val"]) == 0
    out = capsys.readouterr().out
    (trainer,) = trainers  # restored, not trained
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (1, 2, 1)
    assert trainer.current_epoch == 1 and trainer.lr_scheduler.max_steps == 1
    assert "checkpoint_final.pth (final, 1 epoch trained)" in out and "nothing to train" in out
    after = tree(organ_model.fold)
    assert {k: v for k, v in after.items() if k in before} == before  # only a new training log
    assert all(k.startswith("training_log_") for k in set(after) - set(before))
    record = json.loads((organ_model.fold / SETTINGS_FILE).read_text())  # written when the run started
    assert (record["epochs"], record["iterations_per_epoch"], record["val_iterations_per_epoch"]) == (1, 2, 1)


def test_c_refuses_other_settings_unless_asked(organ_model, capsys):
    before = tree(organ_model.fold)
    refused([*ORGAN, "--c", "--epochs", "3", "--iterations-per-epoch", "2", "--no-val"], capsys,
            "started with --epochs 1", "not 3", SETTINGS_FILE, "--change_settings")
    refused([*ORGAN, "--c", "--iterations-per-epoch", "5", "--no-val"], capsys, "--iterations_per_epoch 2", "not 5")
    assert tree(organ_model.fold) == before


def test_c_with_change_settings_continues_on_the_new_schedule(organ_model, train_in_process, capsys):
    """Resumed for a second epoch: nnU-Net's poly rate for epoch 1 of 2, the recorded 2 iterations per epoch."""
    import radconf.training

    seen = []
    original = radconf.training.restore_trainer_state
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(radconf.training, "restore_trainer_state", lambda t, c: (seen.append(t), original(t, c)))
        validated = _validated_weights(patch)
        train_in_process([*ORGAN, "--c", "--epochs", "2", "--change_settings", "--val_best"])
    out = capsys.readouterr().out
    assert "--change_settings: --epochs 1 -> 2" in out
    trainer = seen[0]  # then checkpoint_best is restored into it for the validation (--val_best)
    best = safe_load_checkpoint(organ_model.fold / "checkpoint_best.pth")["network_weights"]
    assert len(seen) == 2 and all(torch.equal(validated[0][k], best[k]) for k in best)
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (2, 2, 1)
    checkpoint = safe_load_checkpoint(organ_model.fold / "checkpoint_final.pth")
    assert checkpoint["current_epoch"] == 2
    learning_rates = checkpoint["logging"]["lrs"]
    assert len(learning_rates) == 2 and math.isclose(learning_rates[1], 1e-2 * (1 - 1 / 2) ** 0.9)
    assert json.loads((organ_model.fold / SETTINGS_FILE).read_text())["epochs"] == 2
