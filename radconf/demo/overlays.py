"""PNG overlays of CT + reference + prediction contours, one figure per case."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from radconf.io.files import atomic_save_figure


def _read(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), tuple(reversed(image.GetSpacing()))


def plot_case_overlay(ct_path: Path, reference_path: Path, prediction_path: Path, labels: dict[str, int],
                      output_png: Path, focus_label: int | None = None, window: tuple[float, float] = (-200, 300)
                      ) -> Path:
    """Axial and coronal slices through the focus structure's centre; reference solid, prediction dashed.

    Args:
        ct_path: the CT image.
        reference_path: reference label map.
        prediction_path: predicted label map.
        labels: name -> id of the structures to draw (background excluded).
        output_png: where the figure goes.
        focus_label: structure whose centroid picks the slices (default: the first label present).
        window: CT display window in HU.

    Returns:
        ``output_png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ct, spacing = _read(ct_path)
    reference, _ = _read(reference_path)
    prediction, _ = _read(prediction_path)
    present = [v for v in labels.values() if (reference == v).any()]
    focus = focus_label if focus_label in present else (present[0] if present else None)
    centre = np.round(np.argwhere(reference == focus).mean(0)).astype(int) if focus else np.array(ct.shape) // 2
    colours = matplotlib.colormaps["tab10"]
    views = [("axial", np.s_[centre[0], :, :], spacing[1] / spacing[2]),
             ("coronal", np.s_[::-1, centre[1], :], spacing[0] / spacing[2])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (title, index, aspect) in zip(axes, views):
        ax.imshow(ct[index], cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, interpolation="nearest")
        for i, (name, value) in enumerate(labels.items()):
            colour = colours(i % 10)
            for mask, style in ((reference[index] == value, "solid"), (prediction[index] == value, "dashed")):
                if mask.any():
                    ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linestyles=style, linewidths=1.2)
        ax.set_title(f"{title} slice")
        ax.set_axis_off()
    handles = [Line2D([], [], color=colours(i % 10), label=name) for i, name in enumerate(labels)]
    handles += [Line2D([], [], color="k", linestyle="solid", label="reference"),
                Line2D([], [], color="k", linestyle="dashed", label="prediction")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False)
    fig.suptitle(Path(reference_path).name.split(".")[0])
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    atomic_save_figure(fig, output_png, dpi=90)
    plt.close(fig)
    return output_png


def plot_level_overlay(ct_path: Path, reference_path: Path, prediction_path: Path, num_levels: int,
                       output_png: Path, window: tuple[float, float] = (-200, 300)) -> Path:
    """Confidence maps over the CT (reference top, prediction bottom) with a level colour bar; level 0 not drawn.

    Slices pass through the centroid of the reference's highest level present.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm

    ct, spacing = _read(ct_path)
    maps = {"reference": _read(reference_path)[0], "prediction": _read(prediction_path)[0]}
    reference = maps["reference"]
    top = int(reference.max())
    centre = np.round(np.argwhere(reference == top).mean(0)).astype(int) if top else np.array(ct.shape) // 2
    views = [("axial", np.s_[centre[0], :, :], spacing[1] / spacing[2]),
             ("coronal", np.s_[::-1, centre[1], :], spacing[0] / spacing[2])]
    colours = matplotlib.colormaps["jet"].resampled(num_levels)
    norm = BoundaryNorm(np.arange(0.5, num_levels + 1.5), num_levels)
    fig, axes = plt.subplots(2, 2, figsize=(10, 9))
    shown = None
    for row, (name, levels) in enumerate(maps.items()):
        for col, (title, index, aspect) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(ct[index], cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, interpolation="nearest")
            overlay = np.ma.masked_equal(levels[index].astype(float), 0)
            shown = ax.imshow(overlay, cmap=colours, norm=norm, alpha=0.55, aspect=aspect, interpolation="nearest")
            ax.set_title(f"{name}, {title}")
            ax.set_axis_off()
    bar = fig.colorbar(shown, ax=axes, ticks=range(1, num_levels + 1), shrink=0.6)
    bar.set_label("confidence level (readers agreeing)")
    fig.suptitle(Path(reference_path).name.split(".")[0])
    atomic_save_figure(fig, output_png, dpi=90)
    plt.close(fig)
    return output_png
