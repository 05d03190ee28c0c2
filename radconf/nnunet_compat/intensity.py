"""CLAHE as nnU-Net preprocessing: radconf's preprocessor, and the configuration manager that hands it out.

nnU-Net resolves ``normalization_schemes`` and ``preprocessor_name`` inside ``nnunetv2`` only, so plans with CLAHE
name ``RadconfCLAHEPreprocessor``/``RadconfCLAHE``: plain nnU-Net finds neither and fails
(``preprocessor_class`` is None; ``DefaultPreprocessor._normalize`` raises "Unable to locate class"). radconf
preprocesses with :class:`RadconfCLAHEPreprocessor` and predicts through :func:`radconf_configuration_manager`.

CLAHE channel: clipped to [percentile_00_5, percentile_99_5] of the plans (the window, or nnU-Net's fingerprint
percentiles), mapped to [0, 1], ``skimage.exposure.equalize_adapthist`` in 3D (kernel 1/8 of each axis, clip limit
``CLAHE_CLIP_LIMIT``, 256 bins), then mapped to [-1, 1].
"""
from __future__ import annotations

import numpy as np
from nnunetv2.preprocessing.preprocessors.default_preprocessor import (
    DefaultPreprocessor,
)
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

CLAHE_SCHEME = "RadconfCLAHE"  # a normalization scheme name nnU-Net cannot resolve
CLAHE_PREPROCESSOR = "RadconfCLAHEPreprocessor"  # a preprocessor name nnU-Net cannot resolve
CLAHE_CLIP_LIMIT = 0.01


def clahe(image: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """``image`` clipped to [lower, upper], equalised in 3D (or 2D), as float32 in [-1, 1]."""
    from skimage.exposure import equalize_adapthist

    scaled = (np.clip(image.astype(np.float64), lower, upper) - lower) / max(upper - lower, 1e-8)
    return (equalize_adapthist(scaled, clip_limit=CLAHE_CLIP_LIMIT, nbins=256) * 2 - 1).astype(np.float32)


class RadconfCLAHEPreprocessor(DefaultPreprocessor):
    """nnU-Net's preprocessor with CLAHE for the channels whose scheme is ``RadconfCLAHE``; the rest is nnU-Net's."""

    def _normalize(self, data: np.ndarray, seg: np.ndarray, configuration_manager: ConfigurationManager,
                   foreground_intensity_properties_per_channel: dict) -> np.ndarray:
        schemes = configuration_manager.normalization_schemes
        ours = [c for c in range(data.shape[0]) if schemes[c] == CLAHE_SCHEME]
        for c in ours:
            properties = foreground_intensity_properties_per_channel[str(c)]
            data[c] = clahe(data[c], properties["percentile_00_5"], properties["percentile_99_5"])
        rest = [c for c in range(data.shape[0]) if c not in ours]
        if rest:
            data[rest] = super()._normalize(data[rest], seg, _Subset(configuration_manager, rest),
                                            {str(i): foreground_intensity_properties_per_channel[str(c)]
                                             for i, c in enumerate(rest)})
        return data


class _Subset:
    """The configuration seen for the channels ``rest`` only (indices renumbered from 0)."""

    def __init__(self, manager: ConfigurationManager, rest: list[int]) -> None:
        self.normalization_schemes = [manager.normalization_schemes[c] for c in rest]
        self.use_mask_for_norm = [manager.use_mask_for_norm[c] for c in rest]


class RadconfConfigurationManager(ConfigurationManager):
    """nnU-Net's configuration manager whose ``preprocessor_class`` also knows radconf's preprocessor (module level,
    so it pickles into nnU-Net's spawned preprocessing workers)."""

    @property
    def preprocessor_class(self) -> type[DefaultPreprocessor]:
        if self.preprocessor_name == CLAHE_PREPROCESSOR:
            return RadconfCLAHEPreprocessor
        return super().preprocessor_class


def radconf_configuration_manager(manager: ConfigurationManager) -> ConfigurationManager:
    """``manager`` as :class:`RadconfConfigurationManager` when its plans name radconf's preprocessor, else as is."""
    if manager.preprocessor_name != CLAHE_PREPROCESSOR:
        return manager
    return RadconfConfigurationManager(manager.configuration)


def preprocess(dataset_id: int, plans_identifier: str, configurations: list[str], num_processes: int,
               verbose: bool = False) -> None:
    """nnU-Net's ``preprocess_dataset`` with radconf's preprocessor where the plans name it (the ground truth copy
    into ``gt_segmentations`` is nnU-Net's own, run with no configuration)."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess_dataset
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    name = convert_id_to_dataset_name(dataset_id)
    plans_manager = PlansManager(f"{nnUNet_preprocessed}/{name}/{plans_identifier}.json")
    for configuration in configurations:
        manager = radconf_configuration_manager(plans_manager.get_configuration(configuration))
        manager.preprocessor_class(verbose=verbose).run(dataset_id, configuration, plans_identifier, num_processes)
    preprocess_dataset(dataset_id, plans_identifier, (), [num_processes], verbose=verbose)
