"""Running weighted ensembles: from images (``radconf_predict -m SPEC ...``) or from saved probabilities
(``radconf_ensemble -i DIR ...``).

Both go case by case: each member's probabilities of the case (nnU-Net's sliding window, fold averaging and
resampling back to the image grid, or a saved ``CASE.npz``) are converted into the ensemble's output space and
added to a ``WeightedAccumulator``, then freed, so memory holds one member's map and the running sum, whatever the
number of members. The mixture is decoded (argmax; monotone level counting for confidence models) and written
atomically, with optional ``CASE.npz`` (the ensemble's probabilities), a disagreement map (weighted standard
deviation of the members' foreground probability, ``disagreement/CASE<ending>``) and, for confidence models, the
level outputs of ``radconf.ordinal_outputs``. ``ensemble.json`` records the members and weights.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radconf.ensembling import (OutputSpace, WeightedAccumulator, check_weights, common_space, decode,
                                require_same_cases, to_space)
from radconf.inference import ModelSpec, anatomy_input_folder, check_input_folder, load_predictor
from radconf.io import atomic_write_image, atomic_write_json, atomic_write_with
from radconf.ordinal import cumulative_dataset_json

DISAGREEMENT_FOLDER = "disagreement"


def warn_if_fitted_on(cases: Sequence[str], fitted_cases: Sequence[str]) -> None:
    """Warns when cases to predict were among those the weights were fitted on (their results are optimistic)."""
    overlap = sorted(set(cases) & set(fitted_cases))
    if overlap:
        warnings.warn(f"{len(overlap)} of the {len(cases)} case(s) were used to fit these ensemble weights "
                      f"({', '.join(overlap[:5])}{', ...' if len(overlap) > 5 else ''}): metrics on them are "
                      f"optimistic. Evaluate ensembles on cases the weights have not seen.", stacklevel=2)


def predict_ensemble(input_folder: str | Path, output_folder: str | Path, members: Sequence[ModelSpec],
                     weights: Sequence[float] | None = None, *, device: str | None = None,
                     save_probabilities: bool = False, save_disagreement: bool = False, overwrite: bool = True,
                     num_processes: int = 2, tile_step_size: float = 0.5, use_mirroring: bool = True,
                     level_probabilities: bool = False, level_masks: Sequence[int] = (),
                     anatomy_dir: str | Path | None = None, anatomy_model: ModelSpec | None = None) -> list[str]:
    """Predicts every case of ``input_folder`` with the weighted ensemble of ``members``.

    Args:
        input_folder: images ``CASE_XXXX<ending>``; all members must take the same input channels.
        output_folder: segmentations ``CASE<ending>`` and the optional outputs.
        members: model specs; members whose weight is 0 are not run.
        weights: one per member, normalised to sum 1; None = equal weights.
        device, tile_step_size, use_mirroring: as for a single model.
        save_probabilities: also write the ensemble's ``CASE.npz`` (output space, image grid).
        save_disagreement: also write the disagreement map.
        overwrite: recompute cases whose segmentation exists.
        num_processes: used by a two-stage organ model only (the ensemble itself runs case by case).
        level_probabilities, level_masks: confidence ensembles: P(level >= c) maps, masks level >= L.
        anatomy_dir, anatomy_model: anatomy-channel members: where their organ masks come from.

    Returns:
        The case identifiers of the input folder.

    Raises:
        ValueError: members disagree on structures, inputs or image grid; bad weights.
    """
    import torch
    from tqdm import tqdm

    weights = check_weights(weights, len(members))
    active = [(spec, float(w)) for spec, w in zip(members, weights) if w > 0]
    if len(members) == 1 and save_disagreement:
        raise ValueError("A disagreement map needs at least two ensemble members.")
    predictors = [load_predictor(spec, device=device, tile_step_size=tile_step_size, use_mirroring=use_mirroring)
                  for spec, _ in active]
    names = [str(spec) for spec, _ in active]
    space, kinds = common_space([p.dataset_json for p in predictors], names)
    first_json = predictors[0].dataset_json
    for name, predictor in zip(names, predictors):
        if predictor.dataset_json["channel_names"] != first_json["channel_names"]:
            raise ValueError(f"Ensemble members must take the same input channels: {names[0]} takes "
                             f"{first_json['channel_names']}, {name} takes {predictor.dataset_json['channel_names']}.")
    output_folder = Path(output_folder)
    settings = dict(device=device, overwrite=overwrite, num_processes=num_processes, tile_step_size=tile_step_size,
                    use_mirroring=use_mirroring)
    ending = first_json["file_ending"]
    with anatomy_input_folder(input_folder, output_folder, first_json, anatomy_dir, anatomy_model,
                              settings) as folder:
        cases = check_input_folder(Path(folder), ending, len(first_json["channel_names"]))
        _write_ensemble_record(output_folder, space, first_json, predictors[0].plans_manager.plans,
                               [str(s) for s in members], weights)
        for case in tqdm(cases, desc="Ensemble", unit="case"):
            if not overwrite and (output_folder / f"{case}{ending}").is_file():
                continue
            files = [str(Path(folder) / f"{case}_{c:04d}{ending}") for c in range(len(first_json["channel_names"]))]
            accumulator = WeightedAccumulator(space, track_disagreement=save_disagreement)
            preprocessed: dict[tuple, tuple] = {}  # members with the same plans share the preprocessing
            for (spec, weight), predictor, kind in zip(active, predictors, kinds):
                key = (spec.dataset, spec.plans, spec.configuration)
                if key not in preprocessed:
                    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
                    data, _, properties = preprocessor.run_case(files, None, predictor.plans_manager,
                                                                predictor.configuration_manager,
                                                                predictor.dataset_json)
                    preprocessed[key] = (data, properties)
                data, properties = preprocessed[key]
                with torch.no_grad():
                    logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
                accumulator.add(to_space(_probabilities(logits, predictor, properties), kind, space), weight)
                del logits
            writer = predictors[0].plans_manager.image_reader_writer_class()
            geometry = next(iter(preprocessed.values()))[1]
            _write_case(output_folder, case, ending, accumulator, space, save_probabilities or space.kind ==
                        "cumulative", lambda seg, tmp: writer.write_seg(seg, tmp, geometry))
    _finish(output_folder, space, ending, save_probabilities, level_probabilities, level_masks)
    return cases


def _probabilities(logits, predictor, properties: dict) -> np.ndarray:
    """nnU-Net's conversion of a member's logits to probabilities on the original image grid."""
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager, properties,
        return_probabilities=True)
    return np.asarray(probabilities)


def _write_case(output_folder: Path, case: str, ending: str, accumulator: WeightedAccumulator, space: OutputSpace,
                write_npz: bool, write_segmentation) -> None:
    """Decodes and writes one case: segmentation, optional npz and disagreement map (geometry of the segmentation)."""
    import SimpleITK as sitk

    mean = accumulator.mean()
    segmentation_file = output_folder / f"{case}{ending}"
    atomic_write_with(segmentation_file, lambda tmp: write_segmentation(decode(mean, space), tmp))
    if write_npz:
        atomic_write_with(output_folder / f"{case}.npz", lambda tmp: np.savez_compressed(tmp, probabilities=mean))
    if accumulator.track_disagreement:
        image = sitk.GetImageFromArray(accumulator.disagreement().astype(np.float32))
        image.CopyInformation(sitk.ReadImage(str(segmentation_file)))
        atomic_write_image(output_folder / DISAGREEMENT_FOLDER / f"{case}{ending}", image)


def _finish(output_folder: Path, space: OutputSpace, ending: str, save_probabilities: bool,
            level_probabilities: bool, level_masks: Sequence[int]) -> None:
    if space.kind == "cumulative":
        from radconf.ordinal_outputs import finish_level_predictions

        finish_level_predictions(output_folder, space.num_channels, ending, cumulative=True,
                                 keep_npz=save_probabilities, probability_maps=level_probabilities,
                                 mask_levels=level_masks)
    elif level_probabilities or level_masks:
        raise ValueError("--level and --level_probabilities need confidence-level members.")


def _write_ensemble_record(output_folder: Path, space: OutputSpace, dataset_json: dict, plans: dict,
                           members: Sequence[str], weights: np.ndarray) -> None:
    """``ensemble.json`` (members, weights), and dataset.json/plans.json describing the ensemble's outputs, so that
    the folder can itself be an input of ``radconf_ensemble``."""
    output_folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output_folder / "ensemble.json", {
        "members": list(members), "weights": [float(w) for w in weights], "output_space": space.kind,
        "labels": {name: list(v) if isinstance(v, tuple) else v for name, v in space.labels}})
    described = cumulative_dataset_json(dataset_json) if space.kind == "cumulative" else dataset_json
    atomic_write_json(output_folder / "dataset.json", described)
    atomic_write_json(output_folder / "plans.json", plans)


def find_model_files(folder: Path) -> tuple[dict, dict]:
    """dataset.json and plans.json of a prediction folder: in it (``radconf_predict``/``nnUNetv2_predict`` output)
    or up to two levels above (``fold_X/validation`` of a trained model)."""
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / "dataset.json").is_file() and (candidate / "plans.json").is_file():
            return (json.loads((candidate / "dataset.json").read_text()),
                    json.loads((candidate / "plans.json").read_text()))
    raise FileNotFoundError(f"No dataset.json/plans.json in {folder} or the two folders above it; use the output "
                            f"folder of radconf_predict --save_probabilities or a model's fold_X/validation "
                            f"(trained with --npz).")


def probability_cases(folders: Sequence[Path]) -> list[str]:
    """Cases with a ``CASE.npz`` in every folder.

    Raises:
        ValueError: a folder has none, or the folders hold different cases (naming them).
    """
    found = [{p.name[: -len(".npz")] for p in Path(f).glob("*.npz")} for f in folders]
    for folder, cases in zip(folders, found):
        if not cases:
            raise FileNotFoundError(f"{folder} holds no CASE.npz probabilities; predict with --save_probabilities "
                                    f"(or validate with --npz).")
    return require_same_cases({str(f): cases for f, cases in zip(folders, found)},
                              "All members must predict the same cases.")


def _check_same_grid(case: str, files: Sequence[Path]) -> None:
    import SimpleITK as sitk

    def geometry(path: Path):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        return reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection()

    first = geometry(files[0])
    for path in files[1:]:
        other = geometry(path)
        if other[0] != first[0] or not all(np.allclose(a, b, atol=1e-4) for a, b in zip(other[1:], first[1:])):
            raise ValueError(f"Case {case}: {path} and {files[0]} are on different image grids (size, spacing, "
                             f"origin or direction differ); ensemble only predictions of the same images.")


def ensemble_folders(input_folders: Sequence[str | Path], output_folder: str | Path,
                     weights: Sequence[float] | None = None, *, save_probabilities: bool = False,
                     save_disagreement: bool = False, overwrite: bool = True, level_probabilities: bool = False,
                     level_masks: Sequence[int] = (), progress: bool = True) -> list[str]:
    """Weighted ensemble of saved probabilities: the counterpart of ``nnUNetv2_ensemble``, with weights.

    Args:
        input_folders: prediction folders with ``CASE.npz`` and ``CASE<ending>`` (whose geometry the output takes),
            and dataset.json/plans.json in the folder or up to two levels above.
        output_folder: where the ensemble's segmentations go.
        weights: one per folder (normalised); None = equal weights.
        save_probabilities, save_disagreement, overwrite, level_probabilities, level_masks: as
            :func:`predict_ensemble`.
        progress: tqdm progress bar.

    Returns:
        The cases ensembled.
    """
    import SimpleITK as sitk
    from tqdm import tqdm

    folders = [Path(f) for f in input_folders]
    weights = check_weights(weights, len(folders))
    descriptions = [find_model_files(f) for f in folders]
    space, kinds = common_space([d for d, _ in descriptions], [str(f) for f in folders])
    ending = descriptions[0][0]["file_ending"]
    cases = probability_cases(folders)
    output_folder = Path(output_folder)
    _write_ensemble_record(output_folder, space, descriptions[0][0], descriptions[0][1], [str(f) for f in folders],
                           weights)
    for case in tqdm(cases, desc="Ensemble", unit="case", disable=not progress):
        if not overwrite and (output_folder / f"{case}{ending}").is_file():
            continue
        references = [f / f"{case}{ending}" for f in folders]
        missing = [str(r) for r in references if not r.is_file()]
        if missing:
            raise FileNotFoundError(f"Case {case}: {missing[0]} is missing; it gives the output its geometry.")
        _check_same_grid(case, references)
        accumulator = WeightedAccumulator(space, track_disagreement=save_disagreement)
        for folder, weight, kind in zip(folders, weights, kinds):
            if weight > 0:
                with np.load(folder / f"{case}.npz") as npz:
                    accumulator.add(to_space(npz["probabilities"], kind, space), float(weight))
        reference = sitk.ReadImage(str(references[0]))

        def write_segmentation(segmentation: np.ndarray, tmp: str) -> None:
            image = sitk.GetImageFromArray(segmentation)
            if image.GetSize() != reference.GetSize():
                raise ValueError(f"Case {case}: probabilities of shape {segmentation.shape} do not match the image "
                                 f"grid {reference.GetSize()[::-1]} of {references[0]}.")
            image.CopyInformation(reference)
            sitk.WriteImage(image, tmp, True)

        _write_case(output_folder, case, ending, accumulator, space, save_probabilities or space.kind == "cumulative",
                    write_segmentation)
    _finish(output_folder, space, ending, save_probabilities, level_probabilities, level_masks)
    return cases
