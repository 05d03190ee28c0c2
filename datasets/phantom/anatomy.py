"""The phantom's structures as plain data (importable without torch or SimpleITK).

Label ids are those of the main label map ``labelsTr/<case>.nii.gz``. The femoral heads are in every image but
labelled only on request: labelled bone drives nnU-Net's CT normalisation (percentiles of labelled voxels) and
squashes soft-tissue contrast for small networks, and left/right labels need training without x-mirroring.
The CTV overlaps the GTV and the readers' GTV contours overlap each other, so both are stored as separate binary
masks (``ctvTr/`` and ``readers/``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Structure:
    """One labelled structure of the phantom.

    Attributes:
        name: label name as written to ``dataset.json``.
        label: integer id in the label map (0 is background).
        hu: typical Hounsfield units of its interior before noise.
        description: what the structure stands for.
    """

    name: str
    label: int
    hu: float
    description: str


STRUCTURES: tuple[Structure, ...] = (
    Structure("bladder", 1, 8.0, "urinary bladder, ellipsoid anterior in the pelvis, filled with urine"),
    Structure("rectum", 2, 42.0, "rectum, curved tube posterior to the bladder, with a gas pocket in half of the "
                                 "cases"),
    Structure("gluteal_muscles", 3, 52.0, "left and right gluteal muscle compartments, posterior-lateral (one label, "
                                          "so that nnU-Net's left-right mirroring is harmless)"),
    Structure("gtv", 4, 78.0, "gross tumour volume: lobulated enhancing mass between bladder and rectum"),
)
# Optional labels (PhantomConfig.label_femoral_heads): bone, and lateralised (train without x-mirroring).
FEMORAL_HEADS: tuple[Structure, ...] = (
    Structure("femoral_head_left", 5, 240.0, "left femoral head (patient left = +x), trabecular bone with a cortex"),
    Structure("femoral_head_right", 6, 240.0, "right femoral head, mirror of the left one"),
)

# Unlabelled tissue, in HU.
AIR_HU = -1000.0
FAT_HU = -95.0
CORTICAL_BONE_HU = 750.0
TRABECULAR_BONE_HU = 240.0
GAS_HU = -700.0

LABELS: dict[str, int] = {"background": 0, **{s.name: s.label for s in STRUCTURES}}
LABELS_WITH_FEMORAL_HEADS: dict[str, int] = {**LABELS, **{s.name: s.label for s in FEMORAL_HEADS}}
GTV_LABEL = LABELS["gtv"]


def labels_for(label_femoral_heads: bool) -> dict[str, int]:
    """The label map's name -> id table."""
    return LABELS_WITH_FEMORAL_HEADS if label_femoral_heads else LABELS


def structure_by_name(name: str) -> Structure:
    """Looks a structure up by name.

    Raises:
        KeyError: naming the known structures.
    """
    for structure in STRUCTURES + FEMORAL_HEADS:
        if structure.name == name:
            return structure
    raise KeyError(f"Unknown phantom structure {name!r}; known: "
                   f"{', '.join(s.name for s in STRUCTURES + FEMORAL_HEADS)}")
