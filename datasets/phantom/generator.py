"""Deterministic CT-like pelvic phantom: image, label map, CTV and simulated readers' GTV contours.

Geometry is defined in millimetres, so the same case can be rendered at any resolution; ``PhantomConfig.spacing``
only sets how finely it is sampled. Axes are numpy (z, y, x) = (inferior->superior, anterior->posterior,
patient right->left), matching an identity-direction LPS image written by SimpleITK.

``PhantomConfig.anatomy_scale`` enlarges or shrinks the anatomy (sizes and positions) within the same field of view:
the anatomy is drawn on a grid of spacing ``spacing / anatomy_scale``, while the image grid, the scanner's noise, the
CTV margins and the readers' contouring errors stay in real millimetres.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field

import numpy as np
from radconf.datasets.phantom import anatomy
from radconf.datasets.phantom.readers import ReaderModel, simulate_readers
from radconf.datasets.phantom.shapes import (
    Grid,
    ellipsoid,
    elliptic_cylinder,
    lobulated_blob,
    smooth_field,
)
from scipy import ndimage

from radconf.contours import Margin, expand_within
from radconf.errors import InvalidInput

ANATOMY_SCALE_RANGE = (0.5, 2.0)


@dataclass(frozen=True)
class PhantomConfig:
    """Everything that determines a phantom dataset; equal configs give byte-identical cases.

    Attributes:
        seed: master seed; case ``i`` uses ``seed`` and ``i`` only, so cases are independent of how many are made.
        field_of_view_mm: physical extent (z, y, x) in mm.
        spacing: nominal voxel spacing (z, y, x) in mm; anisotropic like clinical CT (thick slices).
        spacing_jitter: relative per-case variation of each spacing component (uniform +-).
        noise_hu: standard deviation of the image noise in HU.
        ctv_margin_radial_mm: CTV margin around the GTV in the axial plane.
        ctv_margin_longitudinal_mm: CTV margin along z.
        readers: how the simulated readers contour the GTV.
        label_femoral_heads: also label the femoral heads (left/right; see ``anatomy`` for the caveats).
        anatomy_scale: factor on every anatomical size and position (mm), 0.5 to 2.0 (e.g. 1.1: a 10 % larger
            patient); the field of view, the spacing and the CTV margins are physical mm and stay as they are.
    """

    seed: int = 0
    field_of_view_mm: tuple[float, float, float] = (120.0, 150.0, 170.0)
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0)
    spacing_jitter: float = 0.08
    noise_hu: float = 12.0
    ctv_margin_radial_mm: float = 8.0
    ctv_margin_longitudinal_mm: float = 15.0
    readers: ReaderModel = field(default_factory=ReaderModel)
    label_femoral_heads: bool = False
    anatomy_scale: float = 1.0

    def __post_init__(self) -> None:
        scale = self.anatomy_scale
        low, high = ANATOMY_SCALE_RANGE
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) \
                or not low <= scale <= high:
            raise InvalidInput(f"anatomy_scale must be a number from {low:g} to {high:g} (1.0: the standard "
                               f"anatomy), got {scale!r}.")

    def to_dict(self) -> dict:
        """The parameters as plain data; ``anatomy_scale`` only when it is not 1.0, so that the records of phantoms
        written before it existed still match."""
        parameters = asdict(self)
        if self.anatomy_scale == 1.0:
            del parameters["anatomy_scale"]
        return parameters


@dataclass
class PhantomCase:
    """One generated case; arrays in numpy (z, y, x) order."""

    case_id: str
    spacing: tuple[float, float, float]
    image: np.ndarray  # int16 HU
    labels: np.ndarray  # uint8 label map (ids from anatomy.labels_for(config.label_femoral_heads))
    ctv: np.ndarray  # uint8 binary CTV mask
    reader_masks: dict[str, np.ndarray]  # "<reader>_<trial>" -> uint8 binary GTV mask


def case_spacing(config: PhantomConfig, rng: np.random.Generator) -> tuple[float, float, float]:
    jitter = rng.uniform(1 - config.spacing_jitter, 1 + config.spacing_jitter, size=3)
    return tuple(round(float(s * j), 3) for s, j in zip(config.spacing, jitter))


def _anatomy_masks(grid: Grid, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Boolean masks of every tissue (labelled or not), before precedence is applied."""
    def jitter(scale: float) -> float:
        return float(rng.uniform(-scale, scale))

    body_scale = rng.uniform(0.93, 1.05)
    body_r = (62.0 * body_scale, 78.0 * body_scale)
    masks: dict[str, np.ndarray] = {
        "body": elliptic_cylinder(grid, (0.0, 0.0), body_r),
        "abdominal_wall": elliptic_cylinder(grid, (0.0, 0.0), body_r) & ~elliptic_cylinder(
            grid, (4.0, 0.0), (body_r[0] - 8.0, body_r[1] - 6.0)) & (grid.coords[1] < -25.0),
    }
    for side, sign in (("left", 1.0), ("right", -1.0)):
        masks[f"muscle_{side}"] = elliptic_cylinder(
            grid, (32.0 + jitter(3), sign * (47.0 + jitter(3))), (17.0 + jitter(2), 21.0 + jitter(2)))
        masks[f"iliac_{side}"] = elliptic_cylinder(grid, (-2.0, sign * 52.0), (16.0, 6.0), z_range=(8.0, np.inf))
        masks[f"femoral_head_{side}"] = ellipsoid(
            grid, (-28.0 + jitter(4), -2.0 + jitter(2), sign * (50.0 + jitter(2))), (13.0, 13.0, 13.0))
    masks["sacrum"] = elliptic_cylinder(grid, (44.0, 0.0), (10.0, 21.0))
    fill = rng.uniform(0.8, 1.15)
    masks["bladder"] = ellipsoid(grid, (12.0 + jitter(4), -24.0 + jitter(3), jitter(3)),
                                 (26.0 * fill, 17.0 * fill, 23.0 * fill))
    z, y, x = grid.coords
    curve = 3.0 * np.sin(z / 30.0 + rng.uniform(0, 2 * np.pi))
    masks["rectum"] = ((y - 22.0) / 9.0) ** 2 + ((x - curve) / 11.0) ** 2 <= 1.0
    masks["rectal_gas"] = masks["rectum"] & ellipsoid(grid, (jitter(30), 22.0, 0.0), (8.0, 4.0, 5.0)) \
        if rng.random() < 0.5 else np.zeros(grid.shape, bool)
    masks["prostate"] = ellipsoid(grid, (-14.0, 0.0, 0.0), (18.0, 13.0, 18.0))
    gtv_radius = rng.uniform(12.0, 16.0)
    gtv_distance = lobulated_blob(grid, (-12.0 + jitter(6), 1.0 + jitter(3), jitter(7)),
                                  (gtv_radius * 1.2, gtv_radius, gtv_radius * 1.1), rng)
    masks["gtv_distance_mm"] = gtv_distance
    masks["gtv"] = gtv_distance <= 0
    masks["cortex"] = np.zeros(grid.shape, bool)
    for bone in ("sacrum", "iliac_left", "iliac_right", "femoral_head_left", "femoral_head_right"):
        masks["cortex"] |= masks[bone] & ~ndimage.binary_erosion(masks[bone], iterations=1)
    return {name: np.broadcast_to(m, grid.shape) for name, m in masks.items()}


# Painting order (later wins where shapes overlap); ids are internal, see ``_output_labels`` for the written ones.
_PAINT_ORDER = ("muscle_left", "muscle_right", "femoral_head_left", "femoral_head_right", "rectum", "bladder", "gtv")


def _tissue_map(masks: dict[str, np.ndarray]) -> np.ndarray:
    """Internal structure map (index into _PAINT_ORDER, +1); bone removes muscle, nothing outside the body."""
    tissue = np.zeros(masks["body"].shape, np.uint8)
    for index, name in enumerate(_PAINT_ORDER, start=1):
        tissue[masks[name]] = index
    unlabelled_bone = masks["sacrum"] | masks["iliac_left"] | masks["iliac_right"]
    tissue[unlabelled_bone & (tissue != _PAINT_ORDER.index("gtv") + 1)] = 0
    tissue[~masks["body"]] = 0
    return tissue


def _is(tissue: np.ndarray, name: str) -> np.ndarray:
    return tissue == _PAINT_ORDER.index(name) + 1


def _output_labels(tissue: np.ndarray, label_femoral_heads: bool) -> np.ndarray:
    names = anatomy.labels_for(label_femoral_heads)
    lookup = np.zeros(len(_PAINT_ORDER) + 1, np.uint8)
    for index, name in enumerate(_PAINT_ORDER, start=1):
        merged = "gluteal_muscles" if name.startswith("muscle_") else name
        lookup[index] = names.get(merged, 0)
    return lookup[tissue]


def _render_ct(masks: dict[str, np.ndarray], tissue: np.ndarray, grid: Grid, anatomy_grid: Grid, noise_hu: float,
               rng: np.random.Generator) -> np.ndarray:
    """CT in HU: tissue values, tumour texture (anatomy mm, ``anatomy_grid``), blur, image noise and a slow
    intensity drift (scanner properties, real mm, ``grid``)."""
    hu = np.full(grid.shape, anatomy.AIR_HU, np.float32)
    hu[masks["body"]] = anatomy.FAT_HU
    hu[masks["abdominal_wall"]] = 48.0
    hu[_is(tissue, "muscle_left") | _is(tissue, "muscle_right")] = anatomy.structure_by_name("gluteal_muscles").hu
    for bone in ("sacrum", "iliac_left", "iliac_right", "femoral_head_left", "femoral_head_right"):
        hu[masks[bone]] = anatomy.TRABECULAR_BONE_HU
    hu[masks["cortex"] & masks["body"]] = anatomy.CORTICAL_BONE_HU
    hu[masks["prostate"] & (tissue == 0) & masks["body"]] = 38.0
    for name in ("bladder", "rectum"):
        hu[_is(tissue, name)] = anatomy.structure_by_name(name).hu
    hu[masks["rectal_gas"] & _is(tissue, "rectum")] = anatomy.GAS_HU
    gtv = _is(tissue, "gtv")
    texture = smooth_field(grid.shape, anatomy_grid.spacing, 4.0, rng)
    hu[gtv] = anatomy.structure_by_name("gtv").hu + 8.0 * texture[gtv]
    hu = ndimage.gaussian_filter(hu, sigma=[0.4 / s * min(grid.spacing) for s in grid.spacing])
    hu += noise_hu * smooth_field(grid.shape, grid.spacing, 0.8, rng)
    hu += 6.0 * smooth_field(grid.shape, grid.spacing, 40.0, rng) * masks["body"]
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16)


def _ctv(masks: dict[str, np.ndarray], tissue: np.ndarray, config: PhantomConfig,
         spacing: tuple[float, float, float]) -> np.ndarray:
    """GTV + anisotropic margin grown through tissue around the anatomical barriers, inside the body
    (:func:`radconf.contours.expand_within`): a voxel is in the CTV when a path from the GTV that avoids every
    barrier reaches it within the margin. Array axis 0 increasing is superior (identity direction)."""
    gtv = _is(tissue, "gtv")
    longitudinal = config.ctv_margin_longitudinal_mm
    margin = Margin(radial=config.ctv_margin_radial_mm, superior=longitudinal, inferior=longitudinal)
    barrier = np.isin(tissue, [_PAINT_ORDER.index(n) + 1 for n in _PAINT_ORDER if n != "gtv"])
    barrier |= masks["sacrum"] | masks["iliac_left"] | masks["iliac_right"]
    barrier |= masks["femoral_head_left"] | masks["femoral_head_right"]
    ctv = expand_within(gtv, spacing, margin, barriers=barrier, body=masks["body"], keep_input=True, threads=1)
    return ctv.astype(np.uint8)


def generate_case(config: PhantomConfig, index: int, prefix: str = "phantom") -> PhantomCase:
    """Generates case ``index`` of the dataset described by ``config``.

    Args:
        config: the dataset parameters.
        index: case number; the case depends only on (config, index).
        prefix: case identifier prefix; the id is ``f"{prefix}_{index:03d}"``.

    Returns:
        The case with image, label map, CTV and the readers' GTV masks.
    """
    rng = np.random.default_rng([config.seed, index])
    spacing = case_spacing(config, rng)
    shape = tuple(int(np.rint(f / s)) for f, s in zip(config.field_of_view_mm, spacing))
    grid = Grid(shape=shape, spacing=spacing)
    scale = config.anatomy_scale  # anatomy drawn on a finer (>1) or coarser grid appears scaled in the real image
    anatomy_grid = grid if scale == 1.0 else Grid(shape=shape, spacing=tuple(s / scale for s in spacing))
    masks = _anatomy_masks(anatomy_grid, rng)
    tissue = _tissue_map(masks)
    labels = _output_labels(tissue, config.label_femoral_heads)
    image = _render_ct(masks, tissue, grid, anatomy_grid, config.noise_hu, rng)
    ctv = _ctv(masks, tissue, config, spacing)  # margins in real mm
    gtv_distance_mm = masks["gtv_distance_mm"] if scale == 1.0 else masks["gtv_distance_mm"] * np.float32(scale)
    readers = simulate_readers(gtv_distance_mm, spacing, config.readers, dataset_seed=config.seed, rng=rng)
    return PhantomCase(case_id=f"{prefix}_{index:03d}", spacing=spacing, image=image, labels=labels, ctv=ctv,
                       reader_masks=readers)
