"""Whole-case distance maps: values against scipy's EDT, the int16 codes, and the cache's change detection."""
from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from radconf.anatomy.distance_targets import (
    QUANTUM_MM,
    UNDEFINED,
    DistanceMapStore,
    decode_distance,
    encode_distance,
    signed_distance_mm,
)
from radconf.errors import InvalidInput

SPACING = (3.0, 1.5, 0.8)


def _blob() -> np.ndarray:
    rng = np.random.default_rng(4)
    mask = np.zeros((9, 14, 17), bool)
    mask[3:6, 4:9, 5:12] = True
    mask &= rng.random(mask.shape) > 0.2
    return mask


def test_signed_distance_matches_scipy_with_anisotropic_spacing():
    mask = _blob()
    expected = distance_transform_edt(~mask, sampling=SPACING) - distance_transform_edt(mask, sampling=SPACING)
    np.testing.assert_allclose(signed_distance_mm(mask, SPACING), expected, atol=1e-4)


def test_two_dimensional_maps_are_per_slice_and_undefined_where_the_slice_lacks_the_structure():
    mask = _blob()
    result = signed_distance_mm(mask, SPACING[1:], dims=2)
    for z in range(mask.shape[0]):
        if mask[z].any():
            expected = (distance_transform_edt(~mask[z], sampling=SPACING[1:])
                        - distance_transform_edt(mask[z], sampling=SPACING[1:]))
            np.testing.assert_allclose(result[z], expected, atol=1e-4)
        else:
            assert np.isnan(result[z]).all()


def test_absent_structure_is_undefined_and_bad_arguments_are_refused():
    assert np.isnan(signed_distance_mm(np.zeros((2, 3, 4), bool), SPACING)).all()
    with pytest.raises(InvalidInput, match="spacing"):
        signed_distance_mm(np.zeros((2, 3, 4), bool), (1.0, 1.0))


def test_codes_round_trip_within_half_a_quantum_and_mark_padding_and_absence():
    distance = np.array([-12.34, -0.05, 0.0, 0.04, 7.77, 250.0, np.nan, 5e6], np.float32)
    codes = encode_distance(distance)
    assert codes.dtype == np.int16 and codes[6] == UNDEFINED
    decoded = decode_distance(codes)
    np.testing.assert_allclose(decoded[:6], distance[:6], atol=QUANTUM_MM / 2 + 1e-4)
    assert np.isnan(decoded[6]) and 1638 < decoded[7] < 1639  # absent -> nan; beyond range -> clipped
    assert np.isnan(decode_distance(np.array([-1], np.int16)))[0]  # nnU-Net's segmentation padding


def test_store_computes_reuses_and_recomputes_on_change(tmp_path):
    source = tmp_path / "case_seg.b2nd"
    source.write_bytes(b"x")
    segmentation = np.zeros((1, 6, 8, 8), np.int16)
    segmentation[0, 2:4, 2:4, 2:4] = 1
    segmentation[0, 0, 0, 0] = 2
    store = DistanceMapStore(tmp_path / "maps", [1, 2], SPACING)
    arguments = (["case"], lambda case: segmentation, lambda case: source)
    assert store.ensure(*arguments, progress=False) == 1
    codes = store.load("case")
    assert codes.shape == (2, 6, 8, 8)
    np.testing.assert_allclose(decode_distance(codes[0]), signed_distance_mm(segmentation[0] == 1, SPACING),
                               atol=QUANTUM_MM / 2 + 1e-4)
    loads = []
    assert store.ensure(["case"], lambda case: loads.append(case) or segmentation, lambda case: source,
                        progress=False) == 0  # unchanged: reused, without reading the segmentation
    assert loads == []

    os.utime(source, ns=(1, 1))  # the preprocessed segmentation was rewritten
    assert store.ensure(*arguments, progress=False) == 1
    store.path("case").write_bytes(store.path("case").read_bytes()[:200])  # truncated map
    assert store.ensure(*arguments, progress=False) == 1
    assert DistanceMapStore(tmp_path / "maps", [1], SPACING).ensure(*arguments, progress=False) == 1  # other labels
    assert DistanceMapStore(tmp_path / "maps", [1], (3.0, 1.5, 1.0)).ensure(*arguments, progress=False) == 1
