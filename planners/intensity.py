"""Fixed-window CT normalisation expressed in nnU-Net's own plans, for any planner.

nnU-Net's ``CTNormalization`` clips to the plans' ``percentile_00_5``/``percentile_99_5`` and z-scores with the plans'
``mean``/``std`` (``DefaultPreprocessor._normalize`` reads ``plans["foreground_intensity_properties_per_channel"]``).
Writing LO, HI, (LO+HI)/2 and (HI-LO)/2 there maps [LO, HI] to [-1, 1], and nnU-Net applies it identically in
preprocessing, validation and inference (nnUNetv2_predict too). The fingerprint is not touched.
"""
from __future__ import annotations

from typing import Any


def window_tag(low: float, high: float) -> str:
    """The plans-name and data-identifier suffix of a window, e.g. ``CTw-800_800``."""
    return f"CTw{low:g}_{high:g}"


def window_properties(low: float, high: float) -> dict[str, float]:
    """The intensity properties that make ``CTNormalization`` compute (clip(x, LO, HI) - (LO+HI)/2) / ((HI-LO)/2)."""
    return {"percentile_00_5": float(low), "percentile_99_5": float(high), "mean": (low + high) / 2.0,
            "std": (high - low) / 2.0}


class CTWindowMixin:
    """Mixed in front of a planner: the plans it saves normalise ``window_channels`` with the fixed ``window``.

    The data identifiers carry the window tag, so windowed data never overwrites another plans' data (the cpu
    presets share ``nnUNetPlans_3d_fullres`` with nnU-Net's default plans otherwise).
    """

    window: tuple[float, float] = (-800.0, 800.0)
    window_channels: tuple[int, ...] = ()

    def generate_data_identifier(self, configuration_name: str) -> str:
        identifier = super().generate_data_identifier(configuration_name)  # type: ignore[misc]
        tag = window_tag(*self.window)
        return identifier if tag in identifier else f"{identifier}_{tag}"

    def save_plans(self, plans: dict[str, Any]) -> None:
        low, high = self.window
        for configuration in plans["configurations"].values():
            schemes = configuration.get("normalization_schemes")
            if schemes is None:  # inherits_from another configuration
                continue
            for c in self.window_channels:
                schemes[c] = "CTNormalization"
                configuration["use_mask_for_norm"][c] = False
        properties = plans["foreground_intensity_properties_per_channel"]
        for c in self.window_channels:
            properties[str(c)] = window_properties(low, high)
        plans["radconf_intensity"] = {str(c): {"scheme": "ct_window", "window": [float(low), float(high)]}
                                      for c in self.window_channels}
        super().save_plans(plans)  # type: ignore[misc]


def windowed_planner(planner_class: type, window: tuple[float, float], channels: tuple[int, ...]) -> type:
    """``planner_class`` with :class:`CTWindowMixin` in front (nnU-Net's constructor signature unchanged)."""
    return type(f"{planner_class.__name__}CTWindow", (CTWindowMixin, planner_class),
                {"window": (float(window[0]), float(window[1])), "window_channels": tuple(channels),
                 "__module__": __name__})
