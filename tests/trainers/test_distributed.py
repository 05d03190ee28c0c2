"""``-num_gpus`` end to end on CPU: nnU-Net's DDP with radconf's ConfidenceTrainer on 2 ranks (gloo backend, one
process per rank), through the same :func:`radconf.scale.distributed.train_distributed` that ``radconf_train
-num_gpus 2`` runs on CUDA (NCCL).

What must hold: one log and one set of radconf's files, written by rank 0; the level weights computed once, from
the training split (checked by hand); the ranks' weights identical at the end; nnU-Net's validation split over the
ranks and radconf's level extras added once; the start checked before any process is spawned.
"""
from __future__ import annotations

import json

import blosc2
import numpy as np
import pytest
import torch

from radconf.errors import InvalidInput
from radconf.losses import reciprocal_frequency_weights
from radconf.nnunet_compat.checkpoints import safe_load_checkpoint
from radconf.scale.distributed import train_distributed
from radconf.training import TrainingOptions
from tests.trainers.conftest import CONFIDENCE_K, DATASET_IDS, PLANS

DATASET = DATASET_IDS["confidence"]


def test_two_ranks_train_one_model(trainer_dirs, monkeypatch):
    monkeypatch.setenv("nnUNet_def_n_proc", "1")  # the ranks' validation export workers
    folder = train_distributed(str(DATASET), "3d_fullres", 0, num_gpus=2, trainer="ConfidenceTrainer", plans=PLANS,
                               device="cpu", options=TrainingOptions(epochs=1, iterations_per_epoch=2, seed=3))
    logs = list(folder.glob("training_log_*.txt"))
    assert len(logs) == 1
    log = logs[0].read_text()
    assert log.count("Level weights (reciprocal frequency") == 1
    assert "radconf: network weights identical on all 2 ranks" in log
    record = json.loads((folder / "radconf_training_settings.json").read_text())
    assert record["processes"] == 2 and record["seed"] == 3

    # the level weights: reciprocal frequencies of the training split's preprocessed levels, counted here
    name = f"Dataset{DATASET}_Conf{DATASET}"
    preprocessed = trainer_dirs["nnUNet_preprocessed"] / name
    splits = json.loads((preprocessed / "splits_final.json").read_text())
    segs = [np.asarray(blosc2.open(urlpath=str(preprocessed / "nnUNetPlans_3d_fullres" / f"{c}_seg.b2nd"),
                                   mode="r")[:]) for c in splits[0]["train"]]
    counts = sum(np.bincount(s[s >= 0].ravel(), minlength=CONFIDENCE_K + 1) for s in segs)
    weights = json.loads((folder / "level_weights.json").read_text())
    np.testing.assert_array_equal(weights["level_voxel_counts"], counts)
    np.testing.assert_allclose(weights["weights"], reciprocal_frequency_weights(counts), rtol=1e-12)

    # the final validation: every validation case once (nnU-Net splits them over the ranks), radconf's extras once
    validation = folder / "validation"
    assert sorted(p.name.removesuffix(".nii.gz") for p in validation.glob("*.nii.gz")) == sorted(splits[0]["val"])
    summary = json.loads((validation / "confidence_evaluation" / "summary.json").read_text())
    assert f"level>={CONFIDENCE_K}" in json.dumps(summary) and "continuous_dice" in json.dumps(summary)
    checkpoint = safe_load_checkpoint(folder / "checkpoint_final.pth", "")
    assert checkpoint["current_epoch"] == 1
    assert not any(k.startswith("module.") for k in checkpoint["network_weights"])  # nnU-Net saves the plain module


def test_batch_smaller_than_ranks_refused_before_spawning(trainer_dirs):
    results = trainer_dirs["nnUNet_results"]
    with pytest.raises(InvalidInput, match=r"batch size 2 is smaller than -num_gpus 3"):
        train_distributed(str(DATASET), "3d_fullres", 0, num_gpus=3, trainer="ConfidenceTrainer", plans=PLANS,
                          device="cpu", options=TrainingOptions(epochs=1, iterations_per_epoch=2))
    assert not any(results.iterdir())


@pytest.mark.parametrize("argv, fragment", [
    (["-num_gpus", "2"], "asks for more GPUs than torch sees (0)"),
    (["-num_gpus", "2", "-device", "cpu"], "-device cpu trains in one process"),
    (["-num_gpus", "0"], "-num_gpus"),
])
def test_cli_refuses(trainer_dirs, capsys, argv, fragment):
    from radconf.cli import train

    if torch.cuda.device_count() >= 2 and "-device" not in argv and argv[1] != "0":
        pytest.skip("GPUs present")
    try:
        code = train.main([str(DATASET), "3d_fullres", "0", "-tr", "ConfidenceTrainer", "-p", PLANS, *argv])
    except SystemExit as stopped:  # argparse's own refusal
        code = stopped.code
    assert code == 2
    assert fragment in capsys.readouterr().err
    assert not any(trainer_dirs["nnUNet_results"].iterdir())
