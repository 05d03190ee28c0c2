"""Intensity schemes radconf writes into nnU-Net's own plans, for any planner: a fixed CT window and CLAHE.

Fixed window: nnU-Net's ``CTNormalization`` clips to the plans' ``percentile_00_5``/``percentile_99_5`` and z-scores
with the plans' ``mean``/``std`` (``DefaultPreprocessor._normalize`` reads
``plans["foreground_intensity_properties_per_channel"]``). Writing LO, HI, (LO+HI)/2 and (HI-LO)/2 there maps
[LO, HI] to [-1, 1], and nnU-Net applies it identically in preprocessing, validation and inference (nnUNetv2_predict
too). The fingerprint is not touched.

CLAHE: the channels' scheme becomes ``RadconfCLAHE`` and every configuration's preprocessor
``RadconfCLAHEPreprocessor`` (:mod:`radconf.nnunet_compat.intensity`), which clips to the same two percentiles (the
window when one is given, else nnU-Net's percentiles of labelled voxels) and equalises in 3D. Only radconf resolves
these names: plain nnU-Net fails on such plans instead of normalising differently.
"""
from __future__ import annotations

from typing import Any

from radconf.nnunet_compat.intensity import CLAHE_CLIP_LIMIT, CLAHE_PREPROCESSOR, CLAHE_SCHEME

CLAHE_TAG = "CLAHE"


def window_tag(low: float, high: float) -> str:
    """The plans-name and data-identifier suffix of a window, e.g. ``CTw-800_800``."""
    return f"CTw{low:g}_{high:g}"


def intensity_tag(window: tuple[float, float] | None, clahe: bool) -> str:
    """The suffix of plans with these schemes: ``CTw-800_800``, ``CLAHE`` or ``CTw-800_800_CLAHE``."""
    return "_".join(([window_tag(*window)] if window else []) + ([CLAHE_TAG] if clahe else []))


def window_properties(low: float, high: float) -> dict[str, float]:
    """The intensity properties that make ``CTNormalization`` compute (clip(x, LO, HI) - (LO+HI)/2) / ((HI-LO)/2)."""
    return {"percentile_00_5": float(low), "percentile_99_5": float(high), "mean": (low + high) / 2.0,
            "std": (high - low) / 2.0}


def _own_configurations(plans: dict[str, Any]) -> list[dict[str, Any]]:
    """The configurations that hold their own normalisation (those that ``inherits_from`` another take its)."""
    return [c for c in plans["configurations"].values() if c.get("normalization_schemes") is not None]


class _TaggedData:
    """The data identifiers carry ``tag``, so these plans never share preprocessed data with plans of another scheme
    (the cpu presets share ``nnUNetPlans_3d_fullres`` with nnU-Net's default plans otherwise)."""

    tag: str = ""

    def generate_data_identifier(self, configuration_name: str) -> str:
        identifier = super().generate_data_identifier(configuration_name)  # type: ignore[misc]
        return identifier if self.tag in identifier else f"{identifier}_{self.tag}"


class CTWindowMixin(_TaggedData):
    """Mixed in front of a planner: the plans it saves normalise ``window_channels`` with the fixed ``window``."""

    window: tuple[float, float] = (-800.0, 800.0)
    window_channels: tuple[int, ...] = ()

    def save_plans(self, plans: dict[str, Any]) -> None:
        low, high = self.window
        for configuration in _own_configurations(plans):
            for c in self.window_channels:
                configuration["normalization_schemes"][c] = "CTNormalization"
                configuration["use_mask_for_norm"][c] = False
        properties = plans["foreground_intensity_properties_per_channel"]
        for c in self.window_channels:
            properties[str(c)] = window_properties(low, high)
        plans.setdefault("radconf_intensity", {}).update(
            {str(c): {"scheme": "ct_window", "window": [float(low), float(high)]} for c in self.window_channels})
        super().save_plans(plans)  # type: ignore[misc]


class CLAHEMixin(_TaggedData):
    """Mixed in front of a planner (behind :class:`CTWindowMixin` when both): ``clahe_channels`` are equalised by
    radconf's preprocessor after clipping to the plans' percentiles as they stand when these plans are saved."""

    clahe_channels: tuple[int, ...] = ()

    def save_plans(self, plans: dict[str, Any]) -> None:
        for configuration in _own_configurations(plans):
            configuration["preprocessor_name"] = CLAHE_PREPROCESSOR
            for c in self.clahe_channels:
                configuration["normalization_schemes"][c] = CLAHE_SCHEME
                configuration["use_mask_for_norm"][c] = False
        properties = plans["foreground_intensity_properties_per_channel"]
        record = plans.setdefault("radconf_intensity", {})
        for c in self.clahe_channels:
            clip = [float(properties[str(c)]["percentile_00_5"]), float(properties[str(c)]["percentile_99_5"])]
            source = "window" if record.get(str(c), {}).get("scheme") == "ct_window" else "labelled-voxel percentiles"
            record[str(c)] = {"scheme": "clahe", "window": clip, "window_from": source, "clip_limit": CLAHE_CLIP_LIMIT}
        super().save_plans(plans)  # type: ignore[misc]


def intensity_planner(planner_class: type, window: tuple[float, float] | None = None,
                      window_channels: tuple[int, ...] = (), clahe_channels: tuple[int, ...] | None = None) -> type:
    """``planner_class`` with the mixins of the schemes given in front (nnU-Net's constructor signature unchanged).

    Args:
        window: (LO, HI) for ``window_channels``; None: no window.
        clahe_channels: the channels to equalise; None: no CLAHE.
    """
    bases: list[type] = []
    namespace: dict[str, Any] = {"tag": intensity_tag(window, clahe_channels is not None), "__module__": __name__}
    if window is not None:
        bases.append(CTWindowMixin)
        namespace.update(window=(float(window[0]), float(window[1])), window_channels=tuple(window_channels))
    if clahe_channels is not None:
        bases.append(CLAHEMixin)
        namespace["clahe_channels"] = tuple(clahe_channels)
    if not bases:
        return planner_class
    suffix = "".join(b.__name__.removesuffix("Mixin") for b in bases)
    return type(f"{planner_class.__name__}{suffix}", (*bases, planner_class), namespace)
