"""Localise, crop, segment at prediction (``radconf_predict --localizer``, seed 004).

A localiser model (e.g. a 2d or 3d_lowres model of the same structures) runs first on the whole images; each case's
box is the bounding box of the localiser's ``labels``, grown by ``margin_mm`` per axis and clipped to the image
(:func:`radconf.cropping.boxes.box_of_label_map`). The fine model(s) then segment each case's crop (every channel
cut to the box, world geometry kept) through the ``segment`` callable the caller passes (``radconf.api.predict``
with the fine models and their options, so single models, ensembles, confidence levels, anatomy models and
post-processing all work on the crop), and every image the fine prediction writes (segmentations, level maps,
level masks, disagreement maps, anatomy predictions) is pasted back onto the full image grid, background 0
elsewhere. The output folder gets ``crop_boxes.json`` too, and ``localizer_timing.json`` (the localiser run's
``timing.json``; the folder's ``timing.json`` is the fine run's, on the crops).

A case in which the localiser finds none of its labels is warned about by name; with ``fallback="empty"`` its
results are all background on the image's grid, with ``fallback="full"`` the fine model(s) segment the whole image.

Refused before any work: outputs that cannot be pasted exactly (``--save_probabilities`` archives, ``--save_distance``
maps, ``--uncertainty`` maps and tables), ``--continue_prediction``, ``--anatomy`` label maps of the full images. The
output folder is left as found on failure.
"""
from __future__ import annotations

import math
import numbers
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radconf.errors import InvalidInput
from radconf.models import ModelSpec

if TYPE_CHECKING:
    from radconf.anatomy.inputs import AnatomyInputs
    from radconf.confidence.outputs import LevelOutputs
    from radconf.cropping.boxes import CropBox
    from radconf.inference import RunOptions
    from radconf.io.cases import PredictedCases
    from radconf.models import ModelFiles

FALLBACKS = ("empty", "full")
DEFAULT_MARGIN_MM = 20.0  # seed 004 gives no margin; 2 cm holds an organ's uncertain edge at CT spacings
LOCALIZER_TIMING_FILE = "localizer_timing.json"  # the localiser run's timing.json
FLOAT_FOLDERS = ("level_probabilities", "disagreement")  # outputs of float32 maps; every other output is uint8


@dataclass(frozen=True)
class LocalizerOptions:
    """The localiser of a localise-crop-segment prediction.

    Attributes:
        model: the localiser model.
        margin_mm: margin in mm around its structures' bounding box (``--crop_margin``).
        labels: the localiser's labels to crop around (names or ids of its dataset.json); empty = every foreground
            label.
        fallback: a case in which it finds none of them: ``"empty"`` (all-background results) or ``"full"`` (the
            fine model(s) segment the whole image).
        largest_component: box only the largest connected component of each of its labels
            (``--localizer_largest_component``), so stray detections far away do not stretch the box.
    """

    model: ModelSpec
    margin_mm: float = DEFAULT_MARGIN_MM
    labels: tuple[str, ...] = ()
    fallback: str = "empty"
    largest_component: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelSpec):
            raise InvalidInput("--localizer must be a ModelSpec (ModelSpec.parse('DATASET:TRAINER:PLANS:CONFIG:"
                               "FOLDS')).")
        margin = self.margin_mm
        if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not math.isfinite(margin) \
                or margin < 0:
            raise InvalidInput(f"--crop_margin {margin!r} must be a finite number of mm, 0 or more (e.g. 20).")
        if not isinstance(self.largest_component, bool):
            raise InvalidInput(f"largest_component {self.largest_component!r} must be True or False.")
        if self.fallback not in FALLBACKS:
            raise InvalidInput(f"--fallback {self.fallback!r} is not one of {', '.join(FALLBACKS)}.")
        labels = (self.labels,) if isinstance(self.labels, (str, int)) else tuple(self.labels)
        object.__setattr__(self, "labels", tuple(str(label).strip() for label in labels))
        object.__setattr__(self, "margin_mm", float(margin))


def _refuse_unpastable(run: RunOptions, anatomy: AnatomyInputs, save_distance: bool, uncertainty: object) -> None:
    """Refuses what cannot be pasted back exactly, naming the flag."""
    refused = [("--save_probabilities", run.save_probabilities, "the .npz archives hold the crop's grid only"),
               ("--save_distance", save_distance, "distance maps outside the crop are unknown"),
               ("--uncertainty", uncertainty is not None, "its maps, bounds and volumes describe the crop only"),
               ("--continue_prediction", not run.overwrite, "a localised run predicts every case"),
               ("--anatomy", anatomy.folder is not None, "its label maps are on the full images; give "
                                                         "--anatomy_model to segment the organs on the crop")]
    for flag, given, why in refused:
        if given:
            raise InvalidInput(f"{flag} does not combine with --localizer ({why}); drop it or predict without "
                               f"--localizer.")


def foreground_labels(labels: Mapping[str, Any]) -> list[str]:
    """The label names of a dataset.json that are neither background nor nnU-Net's ``ignore`` label."""
    def ids(value) -> list:
        return value if isinstance(value, list) else [value]

    return [name for name, value in labels.items() if name not in ("background", "ignore") and 0 not in ids(value)]


def _check_models(localizer: LocalizerOptions, models: Sequence[ModelSpec]
                  ) -> tuple[ModelFiles, list[ModelFiles], dict[str, list[int]]]:
    """The localiser's and fine models' files and the localiser labels to crop around."""
    from radconf.cropping.dataset import resolve_labels
    from radconf.models import find_model

    located = find_model(localizer.model)
    fine = [find_model(spec) for spec in models]
    ending = fine[0].file_ending
    if located.file_ending != ending:
        raise InvalidInput(f"The localiser {localizer.model} reads {located.file_ending} images, the model "
                           f"{models[0]} {ending}; --localizer needs a model of the same image files.")
    labels = located.dataset_json["labels"]
    chosen = resolve_labels(list(localizer.labels) or foreground_labels(labels), labels,
                            f"the localiser {localizer.model} ({located.folder / 'dataset.json'})",
                            flag="--localizer_labels")
    return located, fine, chosen


def predict_localized(input_folder: str | Path, output_folder: str | Path, models: Sequence[ModelSpec], *,
                      localizer: LocalizerOptions, segment: Callable[[Path, Path], Any], run: RunOptions,
                      levels: LevelOutputs, anatomy: AnatomyInputs, save_disagreement: bool = False,
                      save_distance: bool = False, uncertainty: object = None) -> PredictedCases:
    """Localises, crops and segments every case of ``input_folder`` into ``output_folder``.

    Args:
        input_folder: images named ``CASE_XXXX<file_ending>`` (the fine model's channels; the localiser reads the
            first of them).
        output_folder: where the pasted results and ``crop_boxes.json`` go.
        models: the fine model(s), for the checks.
        localizer: the localiser, margin, labels and fallback.
        segment: ``segment(crop_folder, prediction_folder)`` predicts a folder of crops with the fine model(s) and
            their options (``radconf.api.predict`` with them bound).
        run: device, workers, mirroring of both stages.
        levels: the fine model's level outputs (their names, for all-background results).
        anatomy: the fine model's anatomy inputs (an organ model runs on the crop).
        save_disagreement: the ensemble writes disagreement maps (their names, for all-background results).
        save_distance, uncertainty: refused (they cannot be pasted exactly).

    Returns:
        The case identifiers of the input folder.

    Raises:
        InvalidInput, MissingInput: options that cannot be pasted, an unknown localiser label, models of other image
            files, missing model files, an output over an input, unusable input images; before anything is written.
    """
    from radconf.inference import check_inputs, check_output_folder, model_levels, prediction_inputs
    from radconf.io.cases import PredictedCases, input_case_channels
    from radconf.io.files import removed_on_failure

    run.check()
    _refuse_unpastable(run, anatomy, save_distance, uncertainty)
    located, fine, chosen = _check_models(localizer, models)
    k = model_levels(fine[0].dataset_json)
    levels.check(k, str(models[0]))
    check_output_folder(output_folder, prediction_inputs(input_folder, [*fine, located], anatomy))
    cases, _ = check_inputs(input_folder, fine[0], anatomy)
    channels = input_case_channels(input_folder, fine[0].file_ending)
    output = Path(output_folder)
    with removed_on_failure(output):
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".localized_", dir=output) as work:
            _run(Path(input_folder), output, Path(work), cases, channels, located, chosen, localizer, segment, run,
                 _ExtraNames(levels, k, save_disagreement))
    return PredictedCases(cases, [])


@dataclass(frozen=True)
class _ExtraNames:
    """What the fine prediction writes per case besides ``CASE<ending>``, for all-background results."""

    levels: LevelOutputs
    k: int | None
    disagreement: bool

    def files(self, case: str, ending: str) -> list[str]:
        from radconf.inference import expected_outputs

        return expected_outputs(case, ending, False, self.levels, self.k,
                                [f"disagreement/{case}{ending}"] if self.disagreement else [])


def _run(input_folder: Path, output: Path, work: Path, cases: list[str], channels: dict[str, list[int]],
         located: ModelFiles, chosen: dict[str, list[int]], localizer: LocalizerOptions,
         segment: Callable[[Path, Path], Any], run: RunOptions, names: _ExtraNames) -> None:
    """The localiser, the boxes, the crops, the fine prediction, the paste, the all-background results and
    crop_boxes.json."""
    from radconf.cropping.dataset import BOXES_FILE, BOXES_FORMAT, localize
    from radconf.io.files import atomic_write_bytes, atomic_write_json
    from radconf.scale.parts import part_file_name
    from radconf.timing import TIMING_FILE, write_timing

    ending = located.file_ending
    maps = localize(input_folder, work / "localizer", localizer.model, run, ending, located.num_channels)
    timing = maps / part_file_name(TIMING_FILE)
    if timing.is_file():  # the localiser's own seconds per case, beside the fine run's timing.json
        atomic_write_bytes(output / part_file_name(LOCALIZER_TIMING_FILE), timing.read_bytes())
    boxes, records = _boxes(input_folder, maps, cases, chosen, localizer, ending)
    to_segment = [case for case in cases if records[case]["result"] != "empty"]
    if to_segment:
        crops, predictions = work / "crops", work / "fine"
        _write_crops(input_folder, crops, {case: channels[case] for case in to_segment}, boxes, ending)
        segment(crops, predictions)
        _paste_folder(predictions, output, {case: boxes[case] for case in to_segment}, ending)
    else:  # nothing to segment: the folder's timing.json holds no fine-model case
        write_timing(output, [], model=f"none ({localizer.model} found nothing)", device=run.device or "default",
                     wall_s=0.0)
    for case in cases:
        if records[case]["result"] == "empty":
            _write_empty(output, case, boxes[case], [f"{case}{ending}", *names.files(case, ending)])
    atomic_write_json(output / part_file_name(BOXES_FILE), {
        "format": BOXES_FORMAT, "version": 1, "localizer": str(localizer.model), "around": chosen,
        "margin_mm": localizer.margin_mm, "fallback": localizer.fallback,
        "largest_component": localizer.largest_component, "cases": records})


def _boxes(input_folder: Path, maps: Path, cases: Iterable[str], chosen: dict[str, list[int]],
           localizer: LocalizerOptions, ending: str) -> tuple[dict[str, CropBox], dict[str, dict]]:
    """Each case's box from the localiser's map, and its crop_boxes.json record; a warning per case without any of
    the labels (its box: the whole image)."""
    from radconf.cropping.boxes import CropBox, box_of_label_map
    from radconf.io.images import read_geometry

    ids = sorted({i for members in chosen.values() for i in members})
    boxes: dict[str, CropBox] = {}
    records: dict[str, dict] = {}
    for case in cases:
        geometry = read_geometry(input_folder / f"{case}_0000{ending}")
        box = box_of_label_map(maps / f"{case}{ending}", ids, localizer.margin_mm, geometry,
                               largest_component=localizer.largest_component)
        result = "cropped" if box is not None else localizer.fallback
        if box is None:
            what = ("its results are all background" if result == "empty" else
                    "the whole image is segmented (--fallback full)")
            warnings.warn(f"case {case}: the localiser {localizer.model} found none of {', '.join(chosen)}; {what}.",
                          stacklevel=4)
            box = CropBox.whole(geometry)
        boxes[case] = box
        records[case] = {"box": box.to_json(), "around": list(chosen), "from": "localizer", "found": result ==
                         "cropped", "whole": box.is_whole, "result": result}
    return boxes, records


def _write_crops(input_folder: Path, crops: Path, channels: dict[str, list[int]], boxes: Mapping[str, CropBox],
                 ending: str) -> None:
    """Every channel of every case cut to its box (world geometry kept)."""
    import SimpleITK as sitk

    from radconf.cropping.boxes import crop
    from radconf.io.files import atomic_write_image

    for case, indices in channels.items():
        for c in indices:
            name = f"{case}_{c:04d}{ending}"
            atomic_write_image(crops / name, crop(sitk.ReadImage(str(input_folder / name)), boxes[case]))


def case_of_output(relative: Path, cases: Iterable[str], ending: str) -> str | None:
    """The case an output image belongs to: ``CASE<ending>`` in any folder, ``CASE_ge<c><ending>`` of the level
    probabilities, else the longest case id followed by ``_`` (None when no case fits)."""
    cases = set(cases)
    stem = relative.name[:-len(ending)]
    if relative.parent.name == "level_probabilities":
        stem = re.sub(r"_ge\d+$", "", stem)
    if stem in cases:
        return stem
    fitting = [case for case in cases if stem.startswith(f"{case}_")]
    return max(fitting, key=len) if fitting else None


def _paste_folder(predictions: Path, output: Path, boxes: Mapping[str, CropBox], ending: str) -> None:
    """Every image of the fine prediction pasted onto its case's full grid (background 0) at the same place in
    ``output``; its other files (dataset.json, plans.json, timing.json, the post-processing record) copied."""
    import SimpleITK as sitk

    from radconf.cropping.boxes import paste
    from radconf.io.files import atomic_write_bytes, atomic_write_image

    for path in sorted(p for p in predictions.rglob("*") if p.is_file()):
        relative = path.relative_to(predictions)
        if any(part.startswith(".") for part in relative.parts):
            continue
        case = case_of_output(relative, boxes, ending) if path.name.endswith(ending) else None
        if case is None:
            atomic_write_bytes(output / relative, path.read_bytes())
            continue
        atomic_write_image(output / relative, paste(sitk.ReadImage(str(path)), boxes[case]))


def _write_empty(output: Path, case: str, box: CropBox, names: Sequence[str]) -> None:
    """The all-background results of a case the localiser found nothing in, on the image's grid."""
    import numpy as np

    from radconf.cropping.boxes import paste
    from radconf.io.files import atomic_write_image

    for name in names:
        dtype = np.float32 if Path(name).parent.name in FLOAT_FOLDERS else np.uint8
        atomic_write_image(output / name, paste(np.zeros(box.crop_shape, dtype), box))
