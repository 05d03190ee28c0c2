"""Post-processing of predicted contours, chosen per structure on validation predictions.

Steps are plain data (:mod:`.steps`); a post-processing is the kept steps per structure (:mod:`.definition`), chosen
by a greedy rule on Dice and HD95 (:mod:`.selection`, :mod:`.determine`), applied to label maps, confidence level maps
and folders (:mod:`.apply`); files are read by :mod:`.reading`, nnU-Net's ``postprocessing.pkl`` translated by
:mod:`.nnunet`. The mask operations are :mod:`radconf.contours`'; the metrics are :mod:`radconf.evaluation`'s. See
``documentation/contours.md`` ("Post-processing").

    from radconf.postprocessing import read_postprocessing, apply_postprocessing
    pp = read_postprocessing("postprocessing.json")
    cleaned = apply_postprocessing(label_map, spacing_zyx, pp)
"""
from __future__ import annotations

from radconf.postprocessing.apply import apply_postprocessing, apply_to_folder, postprocess_predictions
from radconf.postprocessing.definition import PostProcessing, Structure, check_fits, structures_of
from radconf.postprocessing.determine import (
    determine_postprocessing,
    folder_validation,
    model_validation,
)
from radconf.postprocessing.nnunet import read_nnunet_postprocessing
from radconf.postprocessing.reading import read_postprocessing
from radconf.postprocessing.selection import HD95_TOLERANCE_MM, MIN_DICE_GAIN, Selection, select_steps
from radconf.postprocessing.steps import DEFAULT_SEARCH_SPACE, check_step, read_search_space

__all__ = [
    "DEFAULT_SEARCH_SPACE",
    "HD95_TOLERANCE_MM",
    "MIN_DICE_GAIN",
    "PostProcessing",
    "Selection",
    "Structure",
    "apply_postprocessing",
    "apply_to_folder",
    "check_fits",
    "check_step",
    "determine_postprocessing",
    "folder_validation",
    "model_validation",
    "postprocess_predictions",
    "read_nnunet_postprocessing",
    "read_postprocessing",
    "read_search_space",
    "select_steps",
    "structures_of",
]
