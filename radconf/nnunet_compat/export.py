"""Logits -> probabilities on the original image grid, by nnU-Net's own export function (crop undone, resampled)."""
from __future__ import annotations

import numpy as np


def probabilities_on_image_grid(logits, predictor, properties: dict) -> np.ndarray:
    """nnU-Net's conversion of a member's logits to probabilities on the original image grid."""
    from nnunetv2.inference.export_prediction import (
        convert_predicted_logits_to_segmentation_with_correct_shape,
    )

    _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager, properties,
        return_probabilities=True)
    return np.asarray(probabilities)
