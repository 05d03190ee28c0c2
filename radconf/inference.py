"""Prediction with nnU-Net's predictor for any trainer radconf or nnU-Net knows.

The model is rebuilt explicitly (checkpoint -> trainer class via radconf's registry -> its static
``build_network_architecture`` -> ``nnUNetPredictor.manual_initialization``), so radconf's trainers need no entry in
nnU-Net's own lookup. A model is described by a ``ModelSpec``; ensembling several specs builds on the same type.
"""
from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from radconf.anatomy.channels import anatomy_of
from radconf.anatomy.distance_export import export_distance_maps
from radconf.anatomy.inputs import (
    AnatomyInputs,
    assemble_anatomy_inputs,
    split_channels_present,
)
from radconf.confidence.ordinal import ordinal_levels
from radconf.confidence.outputs import LevelOutputs, finish_level_predictions
from radconf.devices import make_device
from radconf.errors import InvalidInput, MissingInput
from radconf.io.cases import check_input_folder
from radconf.io.files import atomic_write_json
from radconf.models import ModelSpec
from radconf.nnunet_compat.checkpoints import safe_load_checkpoint
from radconf.paths import require_nnunet_paths
from radconf.raw.entry import RadconfEntry
from radconf.registry import find_class


def load_predictor(spec: ModelSpec, *, device: str | None = None, tile_step_size: float = 0.5,
                   use_mirroring: bool = True, verbose: bool = False):
    """An initialised ``nnUNetPredictor`` for ``spec`` (checkpoints loaded with ``weights_only=True``).

    Raises:
        FileNotFoundError: the model folder or a fold's checkpoint is missing.
    """
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import (
        determine_num_input_channels,
    )
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = spec.model_folder(require_nnunet_paths().results)
    if not folder.is_dir():
        raise MissingInput(f"Model folder {folder} does not exist; train it with radconf_train "
                                f"{spec.dataset} {spec.configuration} FOLD -tr {spec.trainer} -p {spec.plans}.")
    checkpoints = []
    for fold in spec.folds:
        path = folder / f"fold_{fold}" / spec.checkpoint
        if not path.is_file():
            trained = sorted(p.parent.name for p in folder.glob(f"fold_*/{spec.checkpoint}"))
            raise MissingInput(f"{path} not found (folds with {spec.checkpoint}: {', '.join(trained) or 'none'}). "
                                    f"Pass -f with trained folds or finish training fold {fold}.")
        checkpoints.append(safe_load_checkpoint(path))
    plans_manager = PlansManager(load_json(str(folder / "plans.json")))
    dataset_json = load_json(str(folder / "dataset.json"))
    configuration_manager = plans_manager.get_configuration(checkpoints[0]["init_args"]["configuration"])
    trainer_class = find_class(checkpoints[0]["trainer_name"], "trainer")
    num_inputs = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
    num_outputs = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    network = trainer_class.build_network_architecture(plans_manager, configuration_manager, num_inputs, num_outputs,
                                                       enable_deep_supervision=False)
    parameters = [c["network_weights"] for c in checkpoints]
    network.load_state_dict(parameters[0])
    # a trainer whose network needs another sliding window (e.g. neighbouring slices as channels) names its predictor
    predictor_class = getattr(trainer_class, "predictor_class", None) or nnUNetPredictor
    predictor = predictor_class(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=use_mirroring,
                                perform_everything_on_device=True, device=make_device(device), verbose=verbose,
                                verbose_preprocessing=False, allow_tqdm=True)
    predictor.manual_initialization(network, plans_manager, configuration_manager, parameters, dataset_json,
                                    trainer_class.__name__, checkpoints[0].get("inference_allowed_mirroring_axes"))
    return predictor


@dataclass(frozen=True)
class RunOptions:
    """How a model runs, whatever the method: device, sliding window, workers, what is kept.

    Attributes:
        device: ``cpu``/``cuda``/``mps``; None = cuda when available, else cpu.
        overwrite: recompute cases whose output exists.
        num_processes: nnU-Net's preprocessing and export workers.
        tile_step_size: sliding-window step as a fraction of the patch.
        use_mirroring: test-time mirroring.
        save_probabilities: also write ``CASE.npz``/``CASE.pkl`` as nnU-Net does.
    """

    device: str | None = None
    overwrite: bool = True
    num_processes: int = 2
    tile_step_size: float = 0.5
    use_mirroring: bool = True
    save_probabilities: bool = False


def predict_model(input_folder: str | Path, output_folder: str | Path, spec: ModelSpec, *,
                  run: RunOptions = RunOptions(), levels: LevelOutputs = LevelOutputs(),
                  anatomy: AnatomyInputs = AnatomyInputs(), save_distance: bool = False) -> list[str]:
    """Predicts every case of ``input_folder`` with one model (its folds averaged, nnU-Net's predictor).

    Args:
        input_folder: images named ``CASE_XXXX<file_ending>``.
        output_folder: where segmentations (and ``.npz`` probabilities) go.
        spec: the model.
        run: device, sliding window, workers.
        levels: confidence models: probability maps and masks at chosen levels.
        anatomy: anatomy-channel models whose input folder holds only the images: where the organ masks come from.
        save_distance: distance-head models: write the distance maps in mm (``distance_maps/``).

    Returns:
        The case identifiers predicted.
    """
    predictor = load_predictor(spec, device=run.device, tile_step_size=run.tile_step_size,
                               use_mirroring=run.use_mirroring)
    with anatomy_input_folder(input_folder, output_folder, predictor.dataset_json, anatomy, run) as folder:
        return _predict_folder(predictor, spec, folder, Path(output_folder), run, levels, save_distance)


@contextmanager
def anatomy_input_folder(input_folder, output_folder, dataset_json: dict, inputs: AnatomyInputs, run: RunOptions):
    """The folder to predict from: ``input_folder`` itself, or a temporary one with the organ masks added."""
    anatomy_dir, anatomy_model = inputs.folder, inputs.model
    anatomy = anatomy_of(dataset_json, where="the model's dataset.json")
    if anatomy is None:
        if anatomy_dir or anatomy_model:
            raise InvalidInput("--anatomy/--anatomy_model only apply to models trained with anatomy channels; this "
                             "model's dataset declares none.")
        yield Path(input_folder)
        return
    if anatomy_dir and anatomy_model:
        raise InvalidInput("Give either --anatomy DIR (precomputed organ masks) or --anatomy_model SPEC, not both.")
    ending, num_channels = dataset_json["file_ending"], len(dataset_json["channel_names"])
    if split_channels_present(input_folder, ending, anatomy, num_channels):
        if anatomy_dir or anatomy_model:
            raise InvalidInput(f"{input_folder} already holds the anatomy channels {anatomy.names}; drop "
                             f"--anatomy/--anatomy_model or pass the images only.")
        yield Path(input_folder)
        return
    label_ids = None
    if anatomy_model is not None:
        anatomy_dir = Path(output_folder) / "anatomy_predictions"
        predict_model(input_folder, anatomy_dir, anatomy_model, run=replace(run, save_probabilities=False))
        organ_folder = anatomy_model.model_folder(require_nnunet_paths().results)
        organ_json = json.loads((organ_folder / "dataset.json").read_text())
        label_ids = _label_ids(organ_json)
    elif anatomy_dir is None:
        raise InvalidInput(f"The model takes the organ masks {anatomy.names} as input channels, but {input_folder} "
                         f"holds only the images. Pass --anatomy_model SPEC (the organ model to run first) or "
                         f"--anatomy DIR (label maps CASE{ending} with the ids {dict(anatomy.source_labels)}).")
    Path(output_folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".anatomy_inputs_", dir=output_folder) as assembled:
        assemble_anatomy_inputs(input_folder, anatomy_dir, assembled, anatomy, ending, num_channels,
                                label_ids=label_ids)
        yield Path(assembled)


def _label_ids(dataset_json: dict) -> dict[str, int]:
    return {name: int(value) for name, value in dataset_json["labels"].items() if not isinstance(value, list)}


def _predict_folder(predictor, spec: ModelSpec, input_folder: Path, output_folder: Path, run: RunOptions,
                    levels: LevelOutputs, save_distance: bool) -> list[str]:
    dataset_json = predictor.dataset_json
    cases = check_input_folder(Path(input_folder), dataset_json["file_ending"], len(dataset_json["channel_names"]))
    ordinal = RadconfEntry.of(dataset_json).ordinal
    if levels.requested and not ordinal:
        raise InvalidInput(f"--level and --level_probabilities need a confidence-level model; {spec.trainer} was "
                         f"trained on labels {list(dataset_json['labels'])}.")
    output_folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output_folder / "radconf_model.json", {"model": str(spec)})  # identifies the member
    predictor.predict_from_files(str(input_folder), str(output_folder),
                                 save_probabilities=run.save_probabilities or ordinal, overwrite=run.overwrite,
                                 num_processes_preprocessing=run.num_processes,
                                 num_processes_segmentation_export=run.num_processes)
    if ordinal:  # monotone decoding of the cumulative channels, probability maps, masks at chosen levels
        finish_level_predictions(output_folder, ordinal_levels(dataset_json), dataset_json["file_ending"],
                                 cumulative=predictor.label_manager.has_regions, keep_npz=run.save_probabilities,
                                 probability_maps=levels.probabilities, mask_levels=levels.masks)
    if save_distance:
        settings = spec.model_folder(require_nnunet_paths().results) / f"fold_{spec.folds[0]}" / "distance_head.json"
        if not settings.is_file():
            raise InvalidInput(f"--save_distance needs a model with a distance-map head; {settings} does not exist "
                             f"({spec.trainer} has none, or the fold was trained before it was recorded).")
        export_distance_maps(predictor, input_folder, output_folder, cases, settings)
    return cases
