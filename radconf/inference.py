"""Prediction with nnU-Net's predictor for any trainer radconf or nnU-Net knows.

The model is rebuilt explicitly (checkpoint -> trainer class via radconf's registry -> its static
``build_network_architecture`` -> ``nnUNetPredictor.manual_initialization``), so radconf's trainers need no entry in
nnU-Net's own lookup. A model is described by a ``ModelSpec``; ensembling several specs builds on the same type.
"""
from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from radconf.dataset_checks import find_dataset_name
from radconf.ordinal import RADCONF_KEY, ordinal_levels
from radconf.ordinal_outputs import finish_level_predictions
from radconf.paths import require_nnunet_paths
from radconf.registry import find_class
from radconf.training import make_device, safe_load_checkpoint


@dataclass(frozen=True)
class ModelSpec:
    """One trained model: ``(dataset, trainer, plans, configuration, folds)``."""

    dataset: str
    trainer: str = "nnUNetTrainer"
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"
    folds: tuple[str, ...] = ("0", "1", "2", "3", "4")
    checkpoint: str = "checkpoint_final.pth"

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """``DATASET[:TRAINER[:PLANS[:CONFIGURATION[:FOLDS]]]]``, folds comma-separated (``0,1,2`` or ``all``);
        empty or missing parts take the defaults, e.g. ``501:nnUNetTrainer:radconfCPUPlans:3d_fullres:all``."""
        parts = text.split(":")
        if not parts[0] or len(parts) > 5:
            raise ValueError(f"Model spec {text!r} must look like DATASET[:TRAINER[:PLANS[:CONFIGURATION[:FOLDS]]]], "
                             f"e.g. 501:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2,3,4.")
        names = ("dataset", "trainer", "plans", "configuration", "folds")
        values = {name: part for name, part in zip(names, parts) if part}
        if "folds" in values:
            values["folds"] = tuple(f for f in values["folds"].split(",") if f)
        return cls(**values)

    def __str__(self) -> str:
        return ":".join([self.dataset, self.trainer, self.plans, self.configuration, ",".join(self.folds)])

    def model_folder(self, results_root: Path) -> Path:
        name = find_dataset_name(self.dataset, results_root)
        return results_root / name / f"{self.trainer}__{self.plans}__{self.configuration}"


def check_input_folder(folder: Path, file_ending: str, num_channels: int) -> list[str]:
    """Case identifiers of an input folder whose files are ``CASE_XXXX<ending>``; every case needs all channels."""
    if not folder.is_dir():
        raise FileNotFoundError(f"Input folder {folder} does not exist.")
    files = sorted(p.name for p in folder.iterdir() if p.name.endswith(file_ending))
    channels: dict[str, list[int]] = {}
    for name in files:
        match = re.fullmatch(r"(.+)_(\d{4})" + re.escape(file_ending), name)
        if not match:
            raise ValueError(f"{folder / name}: input files must be named CASE_XXXX{file_ending} (XXXX = channel, "
                             f"e.g. CASE_0000{file_ending}); rename it.")
        channels.setdefault(match.group(1), []).append(int(match.group(2)))
    if not channels:
        raise FileNotFoundError(f"No *_0000{file_ending} images in {folder}.")
    wrong = {c: ch for c, ch in channels.items() if sorted(ch) != list(range(num_channels))}
    if wrong:
        case, found = next(iter(wrong.items()))
        raise ValueError(f"The model expects {num_channels} channel(s) per case (_0000..._{num_channels - 1:04d}) but "
                         f"case {case} in {folder} has channels {sorted(found)} ({len(wrong)} case(s) affected). "
                         f"Provide exactly the channels the model was trained with.")
    return sorted(channels)


def load_predictor(spec: ModelSpec, *, device: str | None = None, tile_step_size: float = 0.5,
                   use_mirroring: bool = True, verbose: bool = False):
    """An initialised ``nnUNetPredictor`` for ``spec`` (checkpoints loaded with ``weights_only=True``).

    Raises:
        FileNotFoundError: the model folder or a fold's checkpoint is missing.
    """
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = spec.model_folder(require_nnunet_paths().results)
    if not folder.is_dir():
        raise FileNotFoundError(f"Model folder {folder} does not exist; train it with radconf_train "
                                f"{spec.dataset} {spec.configuration} FOLD -tr {spec.trainer} -p {spec.plans}.")
    checkpoints = []
    for fold in spec.folds:
        path = folder / f"fold_{fold}" / spec.checkpoint
        if not path.is_file():
            trained = sorted(p.parent.name for p in folder.glob(f"fold_*/{spec.checkpoint}"))
            raise FileNotFoundError(f"{path} not found (folds with {spec.checkpoint}: {', '.join(trained) or 'none'}). "
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


def predict(input_folder: str | Path, output_folder: str | Path, models: Sequence[ModelSpec], *,
            device: str | None = None, save_probabilities: bool = False, overwrite: bool = True,
            num_processes: int = 2, tile_step_size: float = 0.5, use_mirroring: bool = True,
            level_probabilities: bool = False, level_masks: Sequence[int] = (), save_distance: bool = False,
            anatomy_dir: str | Path | None = None, anatomy_model: ModelSpec | None = None,
            weights: Sequence[float] | None = None, save_disagreement: bool = False) -> list[str]:
    """Predicts every case of ``input_folder`` into ``output_folder``.

    Args:
        input_folder: images named ``CASE_XXXX<file_ending>``.
        output_folder: where segmentations (and ``.npz`` probabilities) go.
        models: the model(s). One model: nnU-Net's prediction (its folds averaged). Several (or ``weights``): a
            weighted ensemble (``radconf.ensemble_inference``), members with weight 0 are not run.
        device: ``cpu``/``cuda``/``mps``; None = cuda when available, else cpu.
        save_probabilities: also write ``CASE.npz``/``CASE.pkl`` as nnU-Net does.
        overwrite: recompute cases whose output exists.
        num_processes: preprocessing and export workers.
        tile_step_size: sliding-window step as a fraction of the patch.
        use_mirroring: test-time mirroring.
        level_probabilities: confidence models only: write P(level >= c) maps (``level_probabilities/``).
        level_masks: confidence models only: write binary masks ``level >= L`` for these L (``level<L>_masks/``).
        save_distance: distance-head models only: write the distance maps in mm (``distance_maps/``).
        anatomy_dir: anatomy-channel models whose input folder holds only the images: label maps ``CASE<ending>``
            with the organ labels the model was trained with (ids as in its dataset.json's source_labels).
        anatomy_model: anatomy-channel models: the organ model to run first (two-stage prediction); its
            segmentations are kept in ``<output>/anatomy_predictions`` and its labels are matched by name.
        weights: ensemble weights, one per model (normalised to sum 1); None = equal weights.
        save_disagreement: ensembles: write the members' weighted standard deviation of the foreground probability
            (``disagreement/CASE<ending>``).

    Returns:
        The case identifiers predicted.
    """
    if not models:
        raise ValueError("Give at least one model spec.")
    settings = dict(device=device, overwrite=overwrite, num_processes=num_processes, tile_step_size=tile_step_size,
                    use_mirroring=use_mirroring)
    if len(models) > 1 or weights is not None or save_disagreement:
        if save_distance:
            raise ValueError("--save_distance is not available for ensembles; predict with the distance model alone.")
        from radconf.ensemble_inference import predict_ensemble

        return predict_ensemble(input_folder, output_folder, models, weights, save_probabilities=save_probabilities,
                                save_disagreement=save_disagreement, level_probabilities=level_probabilities,
                                level_masks=level_masks, anatomy_dir=anatomy_dir, anatomy_model=anatomy_model,
                                **settings)
    predictor = load_predictor(models[0], device=device, tile_step_size=tile_step_size, use_mirroring=use_mirroring)
    dataset_json = predictor.dataset_json
    with anatomy_input_folder(input_folder, output_folder, dataset_json, anatomy_dir, anatomy_model,
                              settings) as folder:
        return _predict_folder(predictor, models[0], folder, output_folder, save_probabilities=save_probabilities,
                               overwrite=overwrite, num_processes=num_processes,
                               level_probabilities=level_probabilities, level_masks=level_masks,
                               save_distance=save_distance)


@contextmanager
def anatomy_input_folder(input_folder, output_folder, dataset_json: dict, anatomy_dir,
                         anatomy_model: ModelSpec | None, settings: dict):
    """The folder to predict from: ``input_folder`` itself, or a temporary one with the organ masks added."""
    from radconf.anatomy import anatomy_of

    anatomy = anatomy_of(dataset_json, where="the model's dataset.json")
    if anatomy is None:
        if anatomy_dir or anatomy_model:
            raise ValueError("--anatomy/--anatomy_model only apply to models trained with anatomy channels; this "
                             "model's dataset declares none.")
        yield Path(input_folder)
        return
    from radconf.anatomy_inputs import assemble_anatomy_inputs, split_channels_present

    if anatomy_dir and anatomy_model:
        raise ValueError("Give either --anatomy DIR (precomputed organ masks) or --anatomy_model SPEC, not both.")
    ending, num_channels = dataset_json["file_ending"], len(dataset_json["channel_names"])
    if split_channels_present(input_folder, ending, anatomy, num_channels):
        if anatomy_dir or anatomy_model:
            raise ValueError(f"{input_folder} already holds the anatomy channels {anatomy.names}; drop "
                             f"--anatomy/--anatomy_model or pass the images only.")
        yield Path(input_folder)
        return
    label_ids = None
    if anatomy_model is not None:
        anatomy_dir = Path(output_folder) / "anatomy_predictions"
        predict(input_folder, anatomy_dir, [anatomy_model], **settings)
        organ_folder = anatomy_model.model_folder(require_nnunet_paths().results)
        organ_json = json.loads((organ_folder / "dataset.json").read_text())
        label_ids = _label_ids(organ_json)
    elif anatomy_dir is None:
        raise ValueError(f"The model takes the organ masks {anatomy.names} as input channels, but {input_folder} "
                         f"holds only the images. Pass --anatomy_model SPEC (the organ model to run first) or "
                         f"--anatomy DIR (label maps CASE{ending} with the ids {dict(anatomy.source_labels)}).")
    Path(output_folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".anatomy_inputs_", dir=output_folder) as assembled:
        assemble_anatomy_inputs(input_folder, anatomy_dir, assembled, anatomy, ending, num_channels,
                                label_ids=label_ids)
        yield Path(assembled)


def _label_ids(dataset_json: dict) -> dict[str, int]:
    return {name: int(value) for name, value in dataset_json["labels"].items() if not isinstance(value, list)}


def _predict_folder(predictor, spec: ModelSpec, input_folder: Path, output_folder, *, save_probabilities: bool,
                    overwrite: bool, num_processes: int, level_probabilities: bool, level_masks: Sequence[int],
                    save_distance: bool) -> list[str]:
    dataset_json = predictor.dataset_json
    cases = check_input_folder(Path(input_folder), dataset_json["file_ending"], len(dataset_json["channel_names"]))
    ordinal = (dataset_json.get(RADCONF_KEY) or {}).get("ordinal", False)
    if (level_probabilities or level_masks) and not ordinal:
        raise ValueError(f"--level and --level_probabilities need a confidence-level model; {spec.trainer} was "
                         f"trained on labels {list(dataset_json['labels'])}.")
    Path(output_folder).mkdir(parents=True, exist_ok=True)
    from radconf.io import atomic_write_json

    atomic_write_json(Path(output_folder) / "radconf_model.json", {"model": str(spec)})  # identifies the member
    predictor.predict_from_files(str(input_folder), str(output_folder),
                                 save_probabilities=save_probabilities or ordinal, overwrite=overwrite,
                                 num_processes_preprocessing=num_processes,
                                 num_processes_segmentation_export=num_processes)
    if ordinal:  # monotone decoding of the cumulative channels, probability maps, masks at chosen levels
        finish_level_predictions(output_folder, ordinal_levels(dataset_json), dataset_json["file_ending"],
                                 cumulative=predictor.label_manager.has_regions, keep_npz=save_probabilities,
                                 probability_maps=level_probabilities, mask_levels=level_masks)
    if save_distance:
        from radconf.distance_export import export_distance_maps

        settings = spec.model_folder(require_nnunet_paths().results) / f"fold_{spec.folds[0]}" / "distance_head.json"
        if not settings.is_file():
            raise ValueError(f"--save_distance needs a model with a distance-map head; {settings} does not exist "
                             f"({spec.trainer} has none, or the fold was trained before it was recorded).")
        export_distance_maps(predictor, input_folder, output_folder, cases, settings)
    return cases
