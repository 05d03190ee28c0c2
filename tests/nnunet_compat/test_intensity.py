from __future__ import annotations

import pickle

import numpy as np
import pytest

from radconf.nnunet_compat.intensity import CLAHE_PREPROCESSOR, CLAHE_SCHEME


def _manager(schemes, preprocessor="DefaultPreprocessor"):
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

    return ConfigurationManager({"normalization_schemes": schemes, "use_mask_for_norm": [False] * len(schemes),
                                 "preprocessor_name": preprocessor, "architecture": {}})


def test_nnunets_ct_normalisation_clips_then_scales_with_the_plans_properties():
    # tripwire: the fixed window relies on DefaultPreprocessor._normalize + CTNormalization reading these properties
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import (
        DefaultPreprocessor,
    )

    image = np.array([[[-2000.0, -800.0, -100.0, 0.0, 400.0, 800.0, 3000.0]]], dtype=np.float32)
    properties = {"0": {"percentile_00_5": -100.0, "percentile_99_5": 700.0, "mean": 300.0, "std": 400.0}}
    out = DefaultPreprocessor(verbose=False)._normalize(image.copy(), np.zeros_like(image), _manager(["CTNormalization"]),
                                                       properties)
    expected = (np.clip(image, -100, 700) - 300) / 400
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


def test_plain_nnunet_cannot_resolve_the_clahe_plans():
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import (
        DefaultPreprocessor,
    )

    manager = _manager([CLAHE_SCHEME], CLAHE_PREPROCESSOR)
    assert manager.preprocessor_class is None  # nnUNetv2_predict / preprocess: 'NoneType' object is not callable
    with pytest.raises(RuntimeError, match="Unable to locate class"):
        DefaultPreprocessor(verbose=False)._normalize(np.zeros((1, 4, 4, 4), np.float32), np.zeros((1, 4, 4, 4)),
                                                      manager, {"0": {}})


def test_radconf_manager_resolves_clahe_and_pickles():
    from radconf.nnunet_compat.intensity import (
        RadconfCLAHEPreprocessor,
        clahe,
        radconf_configuration_manager,
    )

    manager = radconf_configuration_manager(_manager([CLAHE_SCHEME, "CTNormalization"], CLAHE_PREPROCESSOR))
    copy = pickle.loads(pickle.dumps(manager))
    assert copy.preprocessor_class is RadconfCLAHEPreprocessor
    plain = _manager(["CTNormalization"])
    assert radconf_configuration_manager(plain) is plain
    rng = np.random.default_rng(0)
    data = rng.normal(0, 300, (2, 8, 16, 16)).astype(np.float32)
    properties = {"0": {"percentile_00_5": -800.0, "percentile_99_5": 800.0},
                  "1": {"percentile_00_5": -100.0, "percentile_99_5": 100.0, "mean": 0.0, "std": 100.0}}
    out = RadconfCLAHEPreprocessor(verbose=False)._normalize(data.copy(), np.zeros((1, 8, 16, 16)), copy, properties)
    from skimage.exposure import equalize_adapthist

    by_hand = equalize_adapthist((np.clip(data[0].astype(np.float64), -800, 800) + 800) / 1600, clip_limit=0.01) * 2 - 1
    np.testing.assert_allclose(out[0], by_hand, atol=1e-6)
    np.testing.assert_allclose(out[0], clahe(data[0], -800, 800), atol=0)
    np.testing.assert_allclose(out[1], np.clip(data[1], -100, 100) / 100, atol=1e-6)
    assert out[0].min() >= -1 and out[0].max() <= 1
