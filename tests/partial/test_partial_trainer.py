"""PartialLabelTrainer through nnU-Net's loop: presence from the batch keys, validation counts, the final summary."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from radconf.partial.loss import MarginalDiceCELoss
from radconf.partial.structures import RECORD_FILE

PLANS = "radconfCPUPlans"
# every training case misses something, so the validation case of any fold does too
MISSING = {"phantom_000": ["rectum"], "phantom_001": ["bladder", "rectum"], "phantom_002": ["bladder"],
           "phantom_003": ["rectum"], "phantom_004": ["gtv"]}
LABELS = {"background": 0, "bladder": 1, "rectum": 2, "gluteal_muscles": 3, "gtv": 4}


@pytest.fixture
def partial_phantom(planned_phantom, in_process, monkeypatch):
    """The planned tiny phantom with a recorded missing-structure table (as radconf_partial_labels writes it)."""
    folder = in_process["nnUNet_preprocessed"] / planned_phantom.folder.name
    (folder / RECORD_FILE).write_text(json.dumps({"missing_structures": MISSING}))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    return folder


def _trainer(name: str = "PartialLabelTrainerNoDA"):
    from radconf.training import build_trainer

    torch.manual_seed(0)
    trainer = build_trainer(990, "3d_fullres", 0, trainer=name, plans=PLANS, device="cpu")
    trainer.initialize()
    return trainer


def _expected_presence(keys) -> torch.Tensor:
    present = torch.ones(len(keys), len(LABELS), dtype=torch.bool)
    for row, key in enumerate(keys):
        for name in MISSING.get(key, []):
            present[row, LABELS[name]] = False
    return present


def test_presence_travels_with_the_batch_to_every_deep_supervision_scale(partial_phantom, monkeypatch):
    trainer = _trainer()
    seen = []
    original = MarginalDiceCELoss.forward

    def spy(self, logits, target):
        seen.append(self.present.clone())
        return original(self, logits, target)

    monkeypatch.setattr(MarginalDiceCELoss, "forward", spy)
    loader, _ = trainer.get_dataloaders()
    for _ in range(2):
        batch = next(loader)
        before = [p.detach().clone() for p in trainer.network.parameters()]
        seen.clear()
        result = trainer.train_step(batch)
        scales = sum(w != 0 for w in trainer.loss.weight_factors)
        assert len(seen) == scales >= 2
        for present in seen:
            assert torch.equal(present, _expected_presence(batch["keys"]))
        assert math.isfinite(float(result["loss"]))
        assert any(not torch.equal(b, p) for b, p in zip(before, trainer.network.parameters()))
    shuffled = list(reversed(batch["keys"]))
    assert torch.equal(trainer.presence(shuffled), _expected_presence(shuffled))
    record = json.loads((Path(trainer.output_folder) / "partial_labels.json").read_text())
    assert record["missing_structures"] == MISSING
    assert record["annotated_cases"] == {"bladder": 3, "rectum": 2, "gluteal_muscles": 5, "gtv": 4}


def test_validation_counts_only_the_structures_each_case_has(partial_phantom):
    """The batch's counts equal the sum of nnU-Net's own per-case counts over the cases that have each class."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    trainer = _trainer()
    _, loader = trainer.get_dataloaders()
    batch = next(loader)
    trainer.network.eval()
    with torch.no_grad():
        mine = trainer.validation_step(batch)
        present = _expected_presence(batch["keys"])[:, 1:].numpy()
        expected = {k: 0 for k in ("tp_hard", "fp_hard", "fn_hard")}
        for b in range(len(batch["keys"])):
            one = {"data": batch["data"][b:b + 1], "keys": batch["keys"][b:b + 1],
                   "target": [t[b:b + 1] for t in batch["target"]]}
            counts = nnUNetTrainer.validation_step(trainer, one)
            for k, total in expected.items():
                expected[k] = total + counts[k] * present[b]
    for k, total in expected.items():
        np.testing.assert_allclose(mine[k], total)
    assert math.isfinite(float(mine["loss"]))


def test_short_training_validates_on_annotated_structures(partial_phantom, in_process):
    from radconf.training import TrainingOptions, train

    folder = train(990, "3d_fullres", 0, trainer="PartialLabelTrainerNoDA", plans=PLANS, device="cpu",
                   options=TrainingOptions(epochs=1, iterations_per_epoch=2, seed=0))
    summary = json.loads((folder / "validation" / "summary.json").read_text())
    original = json.loads((folder / "validation" / "summary_all_structures.json").read_text())
    assert summary["radconf_partial_labels"]["unknown_structures"] == MISSING
    for entry, before in zip(summary["metric_per_case"], original["metric_per_case"]):
        case = entry["reference_file"].rsplit("/", 1)[-1].removesuffix(".nii.gz")
        for name, label in LABELS.items():
            if label == 0:
                continue
            value = entry["metrics"][str(label)]["Dice"]
            if name in MISSING[case]:
                assert math.isnan(value), (case, name)
            else:
                assert value == before["metrics"][str(label)]["Dice"] or (math.isnan(value) and math.isnan(
                    before["metrics"][str(label)]["Dice"]))
    for label in ("1", "2", "3", "4"):
        values = [e["metrics"][label]["Dice"] for e in summary["metric_per_case"]]
        expected = np.nanmean(values) if not all(map(math.isnan, values)) else math.nan
        assert summary["mean"][label]["Dice"] == pytest.approx(expected, nan_ok=True)
    log = next(folder.glob("training_log_*.txt")).read_text()
    assert "partial labels: 5 of 5 cases miss structures" in log


def test_regions_refused():
    """Regions (confidence levels) have no missing structures: refused before the loss is built."""
    from types import SimpleNamespace

    from radconf.trainers.partial_labels import PartialLabelMixin

    from radconf.errors import InvalidInput

    fake = SimpleNamespace(label_manager=SimpleNamespace(has_regions=True))
    with pytest.raises(InvalidInput, match="regions"):
        PartialLabelMixin._build_loss(fake)
