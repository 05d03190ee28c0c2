"""Tables, figure, summary and dataset.json of ``radconf_fuse_readers`` (see :mod:`radconf.fusion_dataset`).

* ``agreement.csv``: one row per mask pair of a case: case, split, mask_a, mask_b, kind (inter/intra), dice,
* ``agreement_cases.csv``: one row per case: masks, readers, mean inter-/intra-reader Dice, majority volume and the
  volume of every ``level >= L`` in ml,
* ``agreement.png``: per-case box + strip plot of the inter- and intra-reader Dice values.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radconf.confidence.ordinal import level_labels
from radconf.io.files import atomic_save_figure
from radconf.io.tables import write_csv

if TYPE_CHECKING:
    from radconf.confidence.case import CaseFusion
    from radconf.confidence.checks import SourceDataset


PAIR_COLUMNS = ("case", "split", "mask_a", "mask_b", "kind", "dice")


def case_columns(k: int) -> list[str]:
    return (["case", "split", "n_masks", "n_readers", "n_inter_pairs", "n_intra_pairs", "mean_inter_dice",
             "mean_intra_dice", "volume_majority_ml"] + [f"volume_ge_level_{level}_ml" for level in range(1, k + 1)])


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def case_rows(case: str, split: str, result: CaseFusion) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the case's agreement_cases.csv row, its agreement.csv rows) from a fused case."""
    pairs = [{"case": case, "split": split, "mask_a": a, "mask_b": b, "kind": kind, "dice": d}
             for kind, entries in (("inter", result.agreement.inter_reader), ("intra", result.agreement.intra_reader))
             for a, b, d in entries]
    pairs.sort(key=lambda row: (row["mask_a"], row["mask_b"]))
    inter = [d for *_, d in result.agreement.inter_reader]
    intra = [d for *_, d in result.agreement.intra_reader]
    row: dict[str, Any] = {
        "case": case, "split": split, "n_masks": result.fusion.n_masks, "n_readers": result.n_readers,
        "n_inter_pairs": len(inter), "n_intra_pairs": len(intra), "mean_inter_dice": _nanmean(inter),
        "mean_intra_dice": _nanmean(intra),
        "volume_majority_ml": float(result.fusion.majority[result.box].sum()) * result.geometry.voxel_volume_ml,
    }
    for level, volume in enumerate(result.volumes_ml(), start=1):
        row[f"volume_ge_level_{level}_ml"] = volume
    return row, pairs


def summarise(case_table: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean and sample SD (ddof 1; NaN for a single case) over cases of the per-case mean Dice, NaN cases left out."""
    summary: dict[str, float] = {}
    for kind in ("inter", "intra"):
        values = np.array([row[f"mean_{kind}_dice"] for row in case_table], float)
        values = values[~np.isnan(values)]
        summary[f"{kind}_mean"] = float(values.mean()) if values.size else math.nan
        summary[f"{kind}_sd"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
        summary[f"{kind}_cases"] = int(values.size)
    return summary


def read_agreement_summary(folder: Path, cases: Sequence[str] | None = None) -> dict[str, float]:
    """:func:`summarise` of a fused dataset's ``agreement_cases.csv``, optionally over some cases (e.g. held-out)."""
    import csv

    with open(Path(folder) / "agreement_cases.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if cases is None or row["case"] in cases]
    return summarise([{key: float(row[f"{key}"]) for key in ("mean_inter_dice", "mean_intra_dice")} for row in rows])


def summary_lines(summary: dict[str, float]) -> list[str]:
    """Human-readable summary, e.g. ``inter-reader Dice 0.905 +- 0.043 (mean +- SD over 16 cases)``."""
    lines = []
    for kind in ("inter", "intra"):
        n = summary[f"{kind}_cases"]
        if n:
            lines.append(f"{kind}-reader Dice {summary[f'{kind}_mean']:.3f} +- {summary[f'{kind}_sd']:.3f} "
                         f"(mean +- SD over {n} case(s) of the per-case mean)")
        else:
            pair = "different readers" if kind == "inter" else "one reader"
            lines.append(f"{kind}-reader Dice: no case has two masks of {pair}")
    return lines


def plot_agreement(pair_table: Sequence[dict[str, Any]], cases: Sequence[str], path: Path) -> Path:
    """Per-case box + strip plot of inter- (left, blue) and intra-reader (right, orange) Dice values."""
    from matplotlib.figure import Figure  # no pyplot: no global state, renders with Agg

    width = min(40.0, max(6.0, 0.45 * len(cases) + 2.0))
    figure = Figure(figsize=(width, 4.0))
    axes = figure.add_subplot()
    rng = np.random.default_rng(0)
    for kind, offset, color in (("inter", -0.18, "tab:blue"), ("intra", 0.18, "tab:orange")):
        positions, data = [], []
        for index, case in enumerate(cases):
            values = [r["dice"] for r in pair_table if r["case"] == case and r["kind"] == kind
                      and not math.isnan(r["dice"])]
            if values:
                positions.append(index + offset)
                data.append(values)
                axes.scatter(index + offset + rng.uniform(-0.06, 0.06, len(values)), values, s=8, color=color,
                             alpha=0.7, zorder=3)
        if data:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes.boxplot(data, positions=positions, widths=0.3, showfliers=False, manage_ticks=False,
                             medianprops={"color": color})
        axes.scatter([], [], color=color, label=f"{kind}-reader")
    axes.set_xticks(range(len(cases)), cases, rotation=90, fontsize=7)
    axes.set_xlim(-0.6, len(cases) - 0.4)
    axes.set_ylabel("Dice")
    axes.set_title("Pairwise Dice between reader masks per case")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    return atomic_save_figure(figure, path, dpi=110, bbox_inches="tight")


def write_reports(folder: Path, case_table: Sequence[dict[str, Any]], pair_table: Sequence[dict[str, Any]],
                  k: int) -> list[Path]:
    """Writes agreement.csv, agreement_cases.csv and agreement.png into ``folder``."""
    return [write_csv(folder / "agreement.csv", pair_table, PAIR_COLUMNS),
            write_csv(folder / "agreement_cases.csv", case_table, case_columns(k)),
            plot_agreement(pair_table, [row["case"] for row in case_table], folder / "agreement.png")]


def dataset_json(source: SourceDataset, *, k: int, structure: str, name: str, generator: str, fusion_rule: str,
                 consensus: list[str], threshold: float | None) -> dict[str, Any]:
    """The fused dataset's dataset.json: plain integer levels 0..k (not regions) and a ``radconf`` entry."""
    train = [c.case for c in source.cases if c.split == "train"]
    test = [c.case for c in source.cases if c.split == "test"]
    n_masks = [len(c.masks) for c in source.cases]
    return {
        "channel_names": source.channel_names,
        "labels": level_labels(k),  # the view radconf's confidence trainers convert
        "numTraining": len(train),
        "file_ending": source.file_ending,
        "name": name,
        "description": (f"Ordinal confidence levels 0..{k} of the {structure}, fused from {min(n_masks)}-"
                        f"{max(n_masks)} reader masks per case by radconf_fuse_readers"),
        "radconf": {
            "ordinal": True,
            "levels": k,
            "structure": structure,
            "fusion_rule": fusion_rule,
            "source": str(source.folder),
            "readers_folder": str(source.readers_folder),
            "threshold": threshold,
            "consensus": consensus,
            "consensus_folders": {m: {"majority": "consensus", "staple": "consensus_staple"}[m] for m in consensus},
            "test_cases": test,
            "generator": generator,
        },
    }
