"""Exports a distance-map head's prediction (``trainers/distance_head.py``) as images in mm, one per structure.

The head runs through nnU-Net's own sliding window (tiles, Gaussian weighting, mirroring, fold averaging) with the
network switched to its distance output; the averaged head output is activated, resampled back to the image grid
the way nnU-Net resamples probabilities, and converted from the normalised d / (d + scale) to mm.
Written as ``<output>/distance_maps/<case>_<structure><ending>`` (float32, the input image's geometry).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput
from radconf.nnunet_compat.checkpoints import unwrap_network

DISTANCE_FOLDER = "distance_maps"


def check_distance_head(network) -> None:
    """Raises InvalidInput unless the network has a distance-map head (checked before anything is predicted)."""
    if not hasattr(unwrap_network(network), "output_mode"):
        raise InvalidInput("This model has no distance-map head; --save_distance needs a trainer with one "
                           "(e.g. DistanceMapTrainer, AnatomyGuidedMultiTaskTrainer).")


@contextmanager
def _distance_output(network):
    check_distance_head(network)
    module = unwrap_network(network)
    module.output_mode = "distance"
    try:
        yield
    finally:
        module.output_mode = "segmentation"


def _to_image_grid(values: np.ndarray, predictor, properties: dict) -> np.ndarray:
    """(T, *preprocessed) -> (T, *original image) as nnU-Net reverts probabilities; outside the crop: 1 (far)."""
    from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image

    plans, configuration = predictor.plans_manager, predictor.configuration_manager
    target_spacing = [properties["spacing"][i] for i in plans.transpose_forward]
    shape = properties["shape_after_cropping_and_before_resampling"]
    current = configuration.spacing if len(configuration.spacing) == len(shape) else \
        [target_spacing[0], *configuration.spacing]
    resampled = np.asarray(configuration.resampling_fn_probabilities(values, shape, current, target_spacing))
    full = np.ones((values.shape[0], *properties["shape_before_cropping"]), np.float32)
    full = insert_crop_into_image(full, resampled.astype(np.float32), properties["bbox_used_for_cropping"])
    return np.asarray(full).transpose([0, *[i + 1 for i in plans.transpose_backward]])


def export_distance_maps(predictor, input_folder: str | Path, output_folder: str | Path, cases: list[str],
                         settings_file: Path) -> list[Path]:
    """Writes the distance maps (mm) of ``cases`` (files ``CASE_XXXX<ending>`` in ``input_folder``).

    Args:
        predictor: an initialised predictor whose network has a distance head.
        input_folder: the images that were segmented.
        output_folder: the prediction folder; maps go to its ``distance_maps/``.
        cases: case identifiers.
        settings_file: the model's ``distance_head.json`` (signed, scale_mm, label names).

    Returns:
        The files written.
    """
    import SimpleITK as sitk
    import torch
    from tqdm import tqdm

    from radconf.anatomy.distance import denormalise_distance
    from radconf.io.files import atomic_write_image

    settings = json.loads(Path(settings_file).read_text())
    signed, scale = bool(settings["signed"]), float(settings["scale_mm"])
    ending = predictor.dataset_json["file_ending"]
    num_channels = len(predictor.dataset_json["channel_names"])
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    written = []
    for case in tqdm(cases, desc="Distance maps", unit="case"):
        files = [str(Path(input_folder) / f"{case}_{c:04d}{ending}") for c in range(num_channels)]
        data, _, properties = preprocessor.run_case(files, None, predictor.plans_manager,
                                                    predictor.configuration_manager, predictor.dataset_json)
        with _distance_output(predictor.network):
            raw = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).float()[1:]
        activated = (torch.tanh(raw) if signed else torch.sigmoid(raw)).cpu().numpy()
        maps = denormalise_distance(_to_image_grid(activated, predictor, properties), scale)
        reference = sitk.ReadImage(files[0])
        for name, values in zip(settings["labels"], maps):
            image = sitk.GetImageFromArray(values)
            image.CopyInformation(reference)
            written.append(atomic_write_image(Path(output_folder) / DISTANCE_FOLDER / f"{case}_{name}{ending}",
                                              image))
    return written
