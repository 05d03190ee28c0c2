"""Display colours of exported structures (RTSTRUCT ROIDisplayColor, SEG and .seg.nrrd segment colours).

Common radiotherapy structures get their customary colours (targets red/orange/cyan, bladder yellow, rectum brown,
...), matched on the normalised name or its first word (so
``lung_left`` and ``lung_right`` share the lung colour, while ``left_lung`` and ``right_lung`` keep two palette
colours); other labels take matplotlib's ``tab20`` palette by label id.
Confidence levels 1..K take the same ``jet`` scale, resampled to K colours, as the level figures of the report.
"""
from __future__ import annotations

from radconf.dicom.names import normalise_name

Colour = tuple[int, int, int]

CUSTOMARY: dict[str, Colour] = {
    "gtv": (255, 0, 0), "ctv": (255, 128, 0), "ptv": (0, 255, 255), "itv": (255, 0, 255),
    "bladder": (255, 255, 0), "rectum": (139, 69, 19), "bowel": (255, 192, 128), "body": (0, 160, 0),
    "external": (0, 160, 0), "prostate": (0, 0, 255), "femur": (200, 200, 255), "femoral": (200, 200, 255),
    "spinal": (255, 255, 128), "spinalcord": (255, 255, 128), "brainstem": (128, 0, 255), "parotid": (0, 128, 255),
    "lung": (0, 200, 200), "heart": (255, 0, 128), "liver": (160, 80, 0), "kidney": (128, 255, 0),
    "gluteal": (220, 120, 120), "oesophagus": (128, 128, 0), "esophagus": (128, 128, 0),
}


def _rgb(values) -> Colour:
    return tuple(round(255 * float(v)) for v in values[:3])  # type: ignore[return-value]


def structure_colour(name: str, label: int) -> Colour:
    """The display colour of a structure called ``name`` with label id ``label``."""
    key = normalise_name(name)
    for word in (key, key.split("_")[0]):
        if word in CUSTOMARY:
            return CUSTOMARY[word]
    import matplotlib

    return _rgb(matplotlib.colormaps["tab20"](int(label - 1) % 20))


def level_colours(levels: int) -> list[Colour]:
    """Colours of confidence levels 1..K (index 0 = level 1), as in the report's level figures."""
    import matplotlib

    scale = matplotlib.colormaps["jet"].resampled(levels)
    return [_rgb(scale(c)) for c in range(levels)]
