"""Surface distances: hand-computed cubes/voxels, empty masks, and DeepMind surface-distance as the oracle."""
from __future__ import annotations

import math

import numpy as np
import pytest

from radconf.evaluation.boundary import compute_voxel_boundary_distances
from radconf.evaluation.surface import (
    SurfaceDistances,
    average_symmetric_surface_distance,
    compute_surface_distances,
    hausdorff_max,
    mean_surface_distance,
    neighbour_codes,
    robust_hausdorff,
    surface_dice,
)

# surface-distance 0.1 (the oracle) uses scipy's deprecated ndimage.filters / ndimage.morphology namespaces
pytestmark = pytest.mark.filterwarnings("ignore:Please import:DeprecationWarning")


def _voxel_area(sz: float, sy: float, sx: float) -> float:
    """Surfel area of a single voxel by hand: an octahedron with half-axes (sz, sy, sx) / 2, 8 triangular faces."""
    return 8 * 0.5 * math.sqrt((sy * sx / 4) ** 2 + (sz * sx / 4) ** 2 + (sz * sy / 4) ** 2)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 1.1, 0.7)])
def test_single_voxel_surface_area_by_hand(spacing):
    mask = np.zeros((5, 5, 5), dtype=bool)
    mask[2, 2, 2] = True
    sd = compute_surface_distances(mask, mask, spacing)
    assert sd.areas_ref.size == 8  # the 8 corners of the voxel
    assert sd.surface_area_ref == pytest.approx(_voxel_area(*spacing), rel=1e-12)
    assert sd.hausdorff_max() == 0.0 and sd.surface_dice(0.0) == 1.0


def test_two_voxels_apart_anisotropic_by_hand():
    """Voxels 3 apart along x (sx = 0.7): 4 corners at 2*sx and 4 at 3*sx in each direction, equal areas."""
    spacing = (2.5, 1.1, 0.7)
    ref = np.zeros((4, 4, 9), dtype=bool)
    pred = np.zeros_like(ref)
    ref[1, 1, 2] = True
    pred[1, 1, 5] = True
    sd = compute_surface_distances(ref, pred, spacing)
    sx = 0.7
    np.testing.assert_allclose(sd.distances_ref_to_pred, [2 * sx] * 4 + [3 * sx] * 4)
    assert hausdorff_max(sd) == pytest.approx(3 * sx)
    assert robust_hausdorff(sd, 95) == pytest.approx(3 * sx)
    assert robust_hausdorff(sd, 50) == pytest.approx(2 * sx)  # nearest rank: half the area is at 2 sx
    assert average_symmetric_surface_distance(sd) == pytest.approx(2.5 * sx)
    assert mean_surface_distance(sd) == pytest.approx(2.5 * sx)
    assert surface_dice(sd, 2 * sx) == pytest.approx(0.5)
    assert surface_dice(sd, 2 * sx - 1e-9) == 0.0
    assert surface_dice(sd, 3 * sx) == 1.0


@pytest.mark.parametrize("axis, spacing, expected", [(2, (1.0, 1.0, 1.0), 1.0), (2, (1.0, 1.0, 2.0), 2.0),
                                                      (0, (2.5, 0.8, 0.8), 2.5), (1, (2.5, 0.8, 0.6), 0.8)])
def test_cube_shifted_by_one_voxel(axis, spacing, expected):
    """A 4^3 cube and its copy shifted by one voxel of spacing s along an axis.

    Every surfel p has p + shift on the other surface, so no distance exceeds s; the 5 x 5 corners of the face left
    behind are exactly s away (their nearest points on the other surface are the shifted face or the side faces,
    both at s), which is far more than 5 % of the area: HD = HD95 = s.
    """
    ref = np.zeros((10, 10, 10), dtype=bool)
    ref[3:7, 3:7, 3:7] = True
    pred = np.roll(ref, 1, axis=axis)
    sd = compute_surface_distances(ref, pred, spacing)
    for distances in (sd.distances_ref_to_pred, sd.distances_pred_to_ref):
        assert distances.max() == pytest.approx(expected)
        assert np.count_nonzero(np.isclose(distances, expected)) >= 25
    assert sd.hausdorff_max() == pytest.approx(expected)
    assert sd.hausdorff(95) == pytest.approx(expected)
    assert sd.surface_dice(expected) == 1.0
    assert 0.0 < sd.surface_dice(expected / 2) < 1.0


def test_empty_masks_conventions():
    empty = np.zeros((6, 6, 6), dtype=bool)
    one = empty.copy()
    one[2:4, 2:4, 2:4] = True
    both = compute_surface_distances(empty, empty, (1, 1, 1))
    for value in (both.surface_dice(2), both.hausdorff(95), both.hausdorff_max(), both.assd(), both.msd()):
        assert math.isnan(value)
    for sd in (compute_surface_distances(one, empty, (1, 1, 1)), compute_surface_distances(empty, one, (1, 1, 1))):
        assert sd.surface_dice(2) == 0.0
        assert sd.hausdorff(95) == math.inf and sd.hausdorff_max() == math.inf
        assert sd.assd() == math.inf and sd.msd() == math.inf
        assert sd.hausdorff(95, "pooled") == math.inf
        assert sd.average_distances() == (math.inf, math.inf)


def test_neighbour_codes_match_the_correlation_kernel():
    from scipy import ndimage

    rng = np.random.default_rng(1)
    mask = rng.random((5, 6, 7)) > 0.5
    padded = np.zeros((6, 7, 8), dtype=np.uint8)
    padded[:-1, :-1, :-1] = mask
    kernel = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]])
    expected = ndimage.correlate(padded.astype(np.int64), kernel, mode="constant", cval=0)
    np.testing.assert_array_equal(neighbour_codes(mask), expected)


def test_invalid_inputs_raise():
    a = np.zeros((4, 4, 4), dtype=bool)
    with pytest.raises(ValueError, match="same voxel grid"):
        compute_surface_distances(a, np.zeros((4, 4, 5), dtype=bool), (1, 1, 1))
    with pytest.raises(ValueError, match="spacing_mm"):
        compute_surface_distances(a, a, (1, 1))
    with pytest.raises(ValueError, match="boolean mask"):
        compute_surface_distances(a.astype(np.uint8) * 2 + 2, a, (1, 1, 1))
    with pytest.raises(ValueError, match="convention"):
        compute_surface_distances(a, a, (1, 1, 1)).hausdorff(95, "median")


# ------------------------------------------------------------------------------------------- oracle comparisons
def _oracle_cases(shapes):
    rng = np.random.default_rng(7)
    cases = []
    for seed in range(5):
        shape = (14 + seed, 20, 18 + 2 * seed)
        ref = shapes.blob(shape, seed)
        pred = shapes.blob(shape, seed + 100) | np.roll(ref, seed % 3, axis=seed % 3)
        spacing = tuple(float(s) for s in np.round(rng.uniform(0.4, 3.0, 3), 3))
        cases.append((ref, pred, spacing))
    # touching the image border on every side, and a tiny prediction far away
    full = np.ones((6, 7, 8), dtype=bool)
    tiny = np.zeros_like(full)
    tiny[0, 0, 0] = True
    cases.append((full, tiny, (2.0, 0.9, 1.3)))
    ell = shapes.ellipsoid((16, 30, 30), (8, 15, 15), (5, 9, 8))
    cases.append((ell, np.roll(ell, (1, -2, 1), axis=(0, 1, 2)), (2.5, 0.98, 0.98)))
    return cases


def _pooled_weighted_percentile(oracle, percent):
    d = np.concatenate([oracle["distances_gt_to_pred"], oracle["distances_pred_to_gt"]])
    a = np.concatenate([oracle["surfel_areas_gt"], oracle["surfel_areas_pred"]])
    order = np.lexsort((a, d))
    cum = np.cumsum(a[order]) / a.sum()
    return d[order][min(np.searchsorted(cum, percent / 100), d.size - 1)]


def test_matches_surface_distance_oracle(shapes):
    sdm = pytest.importorskip("surface_distance")
    for ref, pred, spacing in _oracle_cases(shapes):
        oracle = sdm.compute_surface_distances(ref, pred, spacing)
        ours = compute_surface_distances(ref, pred, spacing)
        for tol in (0.5, 1.0, 2.0, 3.0):
            assert ours.surface_dice(tol) == pytest.approx(sdm.compute_surface_dice_at_tolerance(oracle, tol), abs=1e-6)
            overlap = sdm.compute_surface_overlap_at_tolerance(oracle, tol)
            np.testing.assert_allclose(ours.surface_overlap(tol), overlap, atol=1e-6)
        avg = sdm.compute_average_surface_distance(oracle)
        np.testing.assert_allclose(ours.average_distances(), avg, atol=1e-6)
        assert ours.msd() == pytest.approx((avg[0] + avg[1]) / 2, abs=1e-6)
        a_gt, a_pred = oracle["surfel_areas_gt"], oracle["surfel_areas_pred"]
        pooled = (np.sum(oracle["distances_gt_to_pred"] * a_gt) + np.sum(oracle["distances_pred_to_gt"] * a_pred)) / (
            a_gt.sum() + a_pred.sum()
        )
        assert ours.assd() == pytest.approx(pooled, abs=1e-6)
        for percent in (50, 95, 99, 100):
            assert ours.hausdorff(percent) == pytest.approx(sdm.compute_robust_hausdorff(oracle, percent), abs=1e-6)
        assert ours.hausdorff_max() == pytest.approx(sdm.compute_robust_hausdorff(oracle, 100), abs=1e-6)
        assert ours.hausdorff(95, "pooled") == pytest.approx(_pooled_weighted_percentile(oracle, 95), abs=1e-6)


def test_matches_surface_distance_oracle_2d(shapes):
    sdm = pytest.importorskip("surface_distance")
    for seed in range(3):
        ref, pred = shapes.blob((30, 40), seed), shapes.blob((30, 40), seed + 10)
        spacing = (0.7 + seed, 1.3)
        oracle = sdm.compute_surface_distances(ref, pred, spacing)
        ours = compute_surface_distances(ref, pred, spacing)
        assert ours.hausdorff(95) == pytest.approx(sdm.compute_robust_hausdorff(oracle, 95), abs=1e-6)
        assert ours.surface_dice(2) == pytest.approx(sdm.compute_surface_dice_at_tolerance(oracle, 2), abs=1e-6)


def test_surfel_area_table_matches_oracle():
    lookup = pytest.importorskip("surface_distance.lookup_tables")
    from radconf.evaluation._surfel_table import (
        contour_length_table_2d,
        surfel_area_table_3d,
    )

    for spacing in [(1, 1, 1), (2.5, 0.7, 1.3), (0.3, 3.1, 0.9)]:
        np.testing.assert_allclose(surfel_area_table_3d(spacing),
                                   lookup.create_table_neighbour_code_to_surface_area(spacing), atol=1e-12)
    np.testing.assert_allclose(contour_length_table_2d((2.5, 0.7)),
                               lookup.create_table_neighbour_code_to_contour_length((2.5, 0.7)), atol=1e-12)


def test_unweighted_convention_by_hand():
    """Unit weights: nearest-rank percentile of the raw surfel distances, max of both directions."""
    sd = SurfaceDistances(np.array([0.0, 1.0, 2.0, 5.0]), np.array([9.0, 1.0, 1.0, 1.0]),
                          np.array([0.0, 0.5]), np.array([1.0, 1.0]), (1.0, 1.0, 1.0))
    # smallest distance whose cumulative weight fraction reaches the percentile
    assert sd.hausdorff(50, "unweighted") == 1.0  # reference: cum 1/4, 2/4 -> 1.0; prediction: cum 1/2 -> 0.0
    assert sd.hausdorff(60, "unweighted") == 2.0  # reference: cum 3/4 at 2.0; prediction: 0.5
    assert sd.hausdorff(60) == 0.5  # area weighted: reference cum 9/12 at 0.0; prediction cum 1/2, 1 -> 0.5
    assert sd.hausdorff(50) == 0.0  # both sides reach 50 % at distance 0
    # pooled (distance, area) sorted: (0,1) (0,9) (0.5,1) (1,1) (2,1) (5,1): cum 1/14, 10/14, 11/14 -> 0.5
    assert sd.hausdorff(75, "pooled") == 0.5
    assert sd.hausdorff(70, "pooled") == 0.0


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_voxel_convention_matches_monai(shapes):
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    spacing = (2.5, 0.9, 1.2)
    ref = shapes.blob((14, 22, 20), 3)
    pred = shapes.blob((14, 22, 20), 4) | np.roll(ref, 1, axis=1)
    ours = compute_voxel_boundary_distances(ref, pred, spacing)

    def onehot(mask):
        return torch.from_numpy(np.stack([~mask, mask])[None].astype(np.float32))

    hd = monai_metrics.compute_hausdorff_distance(onehot(pred), onehot(ref), percentile=95, spacing=spacing)
    assert ours.hausdorff(95) == pytest.approx(float(hd[0, 0]), abs=1e-4)  # MONAI returns float32
    nsd = monai_metrics.compute_surface_dice(onehot(pred), onehot(ref), class_thresholds=[2.0], spacing=spacing)
    assert ours.surface_dice(2.0) == pytest.approx(float(nsd[0, 0]), abs=1e-6)
    asd = monai_metrics.compute_average_surface_distance(onehot(pred), onehot(ref), symmetric=True, spacing=spacing)
    assert ours.assd() == pytest.approx(float(asd[0, 0]), abs=1e-4)
