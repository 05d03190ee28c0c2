"""Validation of a partially labelled training: pseudo-Dice and nnU-Net's final summary on the structures each
case has.

- :func:`tp_fp_fn_present`: the online pseudo-Dice counts of one validation batch, per case, with the classes a case
  misses left out (its reference calls them background, so the model's correct detection would count as false
  positive);
- :func:`restrict_summary`: nnU-Net's ``validation/summary.json`` with the metrics of missing structures set to NaN
  (unknown) and the means recomputed exactly as nnU-Net does (``nanmean`` over cases per label, then the mean over
  labels); nnU-Net's own file is kept as ``summary_all_structures.json``.
"""
from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from radconf.io.files import atomic_write_json
from radconf.partial.structures import MissingStructures

ORIGINAL_SUMMARY = "summary_all_structures.json"


def tp_fp_fn_present(logits: torch.Tensor, target: torch.Tensor, present: torch.Tensor,
                     ignore_label: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hard true/false positives and false negatives per foreground class, summed over the cases that have the class.

    Args:
        logits: ``(b, c, ...)`` network output (softmax classes).
        target: ``(b, 1, ...)`` integer labels (may hold ``ignore_label``).
        present: ``(b, c)`` bool, the classes each case has.
    """
    from nnunetv2.training.loss.dice import get_tp_fp_fn_tn

    predicted = torch.zeros(logits.shape, device=logits.device, dtype=torch.float16)
    predicted.scatter_(1, logits.argmax(1)[:, None], 1)
    mask = None
    if ignore_label is not None:
        mask = (target != ignore_label).float()
        target = torch.where(target == ignore_label, 0, target)
    tp, fp, fn, _ = get_tp_fp_fn_tn(predicted, target, axes=list(range(2, logits.ndim)), mask=mask)
    weight = present.to(device=tp.device, dtype=tp.dtype)
    return tuple((t * weight).sum(0)[1:].detach().cpu().numpy() for t in (tp, fp, fn))


def _case_of(entry: dict, file_ending: str) -> str:
    name = Path(entry.get("reference_file") or entry.get("prediction_file")).name
    return name.removesuffix(file_ending)


def restrict_summary(summary_file: str | Path, missing: MissingStructures, file_ending: str) -> int:
    """Rewrites nnU-Net's summary.json without the missing structures' metrics; returns the number of case-structure
    pairs set to unknown (0: the file is left as it is)."""
    summary_file = Path(summary_file)
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    unknown = 0
    for entry in summary["metric_per_case"]:
        for label in missing.missing_ids(_case_of(entry, file_ending)):
            metrics = entry["metrics"].get(str(label))
            if metrics is not None:
                entry["metrics"][str(label)] = {m: math.nan for m in metrics}
                unknown += 1
    if not unknown:
        return 0
    means = {}
    for key in summary["mean"]:
        values = [e["metrics"][key] for e in summary["metric_per_case"] if key in e["metrics"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 'Mean of empty slice': a label no case has
            means[key] = {m: float(np.nanmean([v[m] for v in values])) for m in summary["mean"][key]}
    summary["mean"] = means
    summary["foreground_mean"] = {m: float(np.mean([means[k][m] for k in means])) for m in summary["foreground_mean"]}
    summary["radconf_partial_labels"] = {
        "unknown_structures": {c: list(n) for c, n in missing.missing.items()},
        "note": f"metrics of structures a case's reference does not annotate are NaN (unknown); nnU-Net's summary "
                f"over every structure is {ORIGINAL_SUMMARY}"}
    original = summary_file.with_name(ORIGINAL_SUMMARY)
    shutil.copyfile(summary_file, original)
    atomic_write_json(summary_file, summary)  # NaN written as nnU-Net writes it
    return unknown
