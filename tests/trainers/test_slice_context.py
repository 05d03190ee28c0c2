"""2.5D slice context: loader crops, predictor inputs, and a train -> validate -> resume -> predict run on CPU (the
session's planned phantom, ``trainer_datasets``, copied into the test's own nnU-Net folders)."""
from __future__ import annotations

import importlib
import itertools
import pickle

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from radconf.trainers.slice_context import (
    SliceContextDataLoader,
    SliceContextMixin,
    SliceContextPredictor,
    nnUNetTrainerSliceContext5,
    stack_neighbour_slices,
)

from .conftest import Recorder

S = 5


def _expected(volume: np.ndarray, centre: int) -> np.ndarray:
    """Channel c * S + k = channel c of slice centre - S // 2 + k, edge-replicated at the volume ends."""
    depth = volume.shape[1]
    return np.stack([volume[c, min(max(centre - S // 2 + k, 0), depth - 1)]
                     for c in range(volume.shape[0]) for k in range(S)])


def test_stacking_order_and_edge_replication():
    volume = torch.arange(2 * 3, dtype=torch.float32).reshape(2, 3, 1, 1)  # value = 3 * channel + slice
    stacked = stack_neighbour_slices(volume, S)
    assert stacked.shape == (2 * S, 3, 1, 1)
    assert stacked[:S, 0, 0, 0].tolist() == [0, 0, 0, 1, 2]  # slice 0: neighbours -2, -1 repeat slice 0
    assert stacked[S:, 2, 0, 0].tolist() == [3, 4, 5, 5, 5]  # channel 1, last slice: slices 0, 1, 2, 2, 2
    for d in range(3):
        assert np.array_equal(stacked[:, d].numpy(), _expected(volume.numpy(), d))


def test_loader_stacks_neighbours_and_keeps_the_centre_segmentation(tmp_path):
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    rng = np.random.default_rng(0)
    depth, size = 6, 8
    data = rng.normal(size=(2, depth, size, size)).astype(np.float32)
    seg = (rng.random((1, depth, size, size)) > 0.7).astype(np.int8)
    seg[0, [0, depth - 1], 4, 4] = 1  # the only foreground the sampler knows: centre voxel of both end slices
    locations = {1: np.array([[0, 0, 4, 4], [0, depth - 1, 4, 4]])}
    whole = (1, depth, size, size)  # blosc2 chunks = blocks = one channel
    nnUNetDatasetBlosc2.save_case(data, seg, {"class_locations": locations}, str(tmp_path / "case"), chunks=whole,
                                  blocks=whole, chunks_seg=whole, blocks_seg=whole)
    dataset = nnUNetDatasetBlosc2(str(tmp_path))
    labels = LabelManager({"background": 0, "fg": 1}, None)
    loader = SliceContextDataLoader(dataset, 4, (size, size), (size, size), labels, oversample_foreground_percent=0.5,
                                    context_slices=S)  # samples 2 and 3 of each batch are forced foreground
    loader = pickle.loads(pickle.dumps(loader))  # workers started with spawn receive a pickled copy
    np.random.seed(0)
    centres = []
    for _ in range(8):
        batch = next(loader)
        assert batch["data"].shape == (4, 2 * S, size, size) and batch["target"].shape == (4, 1, size, size)
        for j in range(4):
            # the centre channel of input channel 0 tells the sampled slice
            matches = [z for z in range(depth) if np.array_equal(batch["data"][j, S // 2].numpy(), data[0, z])]
            assert len(matches) == 1
            centre = matches[0]
            centres.append(centre)
            assert np.array_equal(batch["data"][j].numpy(), _expected(data, centre))
            assert np.array_equal(batch["target"][j, 0].numpy(), seg[0, centre])
            if j >= 2:  # foreground oversampling centres the crop on the chosen foreground voxel's slice
                assert centre in (0, depth - 1) and batch["target"][j, 0, 4, 4] == 1
    assert {0, depth - 1} <= set(centres) and len(set(centres)) > 3


def test_predictor_feeds_each_slice_with_its_neighbours_and_mirrors_in_plane():
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    torch.manual_seed(0)
    plans = PlansManager({"configurations": {"2d": {"patch_size": [8, 8], "architecture": {}}}})
    dataset_json = {"labels": {"background": 0, "a": 1, "b": 2}}
    conv = torch.nn.Conv2d(2 * S, 3, 3, padding=1)
    network = Recorder(conv)
    # one 8x8 tile per slice and no Gaussian weighting: logits = the mirrored network mean (stored as fp16)
    predictor = SliceContextPredictor(use_gaussian=False, use_mirroring=True, perform_everything_on_device=False,
                                      device=torch.device("cpu"), allow_tqdm=False)
    predictor.manual_initialization(network, plans, plans.get_configuration("2d"), None, dataset_json,
                                    "nnUNetTrainerSliceContext5", (0, 1))
    volume = torch.randn(2, 4, 8, 8)
    logits = predictor.predict_sliding_window_return_logits(volume)
    assert logits.shape == (3, 4, 8, 8)

    combos = [()] + [c for i in (1, 2) for c in itertools.combinations((2, 3), i)]  # in-plane flips only
    assert len(network.inputs) == 4 * len(combos)
    with torch.no_grad():
        for d in range(4):
            stacked = torch.from_numpy(_expected(volume.numpy(), d))[None]
            assert torch.equal(network.inputs[d * len(combos)], stacked)
            manual = sum(torch.flip(conv(torch.flip(stacked, c)), c) if c else conv(stacked) for c in combos)
            assert torch.allclose(logits[:, d].float(), manual[0] / len(combos), atol=2e-3)


def test_subclass_gets_a_matching_predictor():
    class ThreeSlices(SliceContextMixin, nnUNetTrainer):
        context_slices = 3

    assert ThreeSlices.predictor_class.context_slices == 3 and issubclass(ThreeSlices.predictor_class,
                                                                        SliceContextPredictor)
    assert nnUNetTrainerSliceContext5.predictor_class is SliceContextPredictor
    with pytest.raises(ValueError, match="odd"):
        type("Even", (SliceContextMixin, nnUNetTrainer), {"context_slices": 4})
    # the nnU-Net globals the mixin substitutes (nnUNetDataLoader, nnUNetPredictor) are checked in
    # tests/nnunet_compat/test_tripwires.py


@pytest.fixture
def planned_2d(trainer_datasets, tmp_path, monkeypatch):
    """The session store's plain phantom (Dataset990, ``radconfCPUPlans`` with 2d preprocessed) copied into this
    test's nnU-Net folders; one worker process, torch on one thread (``in_process_nnunet``), single-threaded
    augmentation (``nnUNet_n_proc_DA=0``)."""
    from tests.conftest import in_process_nnunet

    from .conftest import copy_trainer_datasets, threaded_inference

    assert "2d" in trainer_datasets.configurations["plain"]
    dirs = copy_trainer_datasets(trainer_datasets, tmp_path / "nnunet")
    # in_process_nnunet patches nnUNet_def_n_proc's globals (read at import: nnU-Net's validation spawns 8 export and
    # 8 metric workers, its predictor runs torch with up to 8 threads) to 1 and runs torch on one thread: OpenMP
    # threads wait on each other on a small shared machine (10x slower here)
    # and nnU-Net's prediction/validation workers run as threads (spawned ones import torch first)
    with in_process_nnunet(monkeypatch, dirs), threaded_inference(monkeypatch):
        monkeypatch.setenv("nnUNet_n_proc_DA", "0")  # single-threaded augmentation (nnU-Net's planner needs it > 0)
        yield dirs


def test_train_validate_resume_predict_2d(planned_2d, tmp_path):
    from radconf.api import RunOptions, predict
    from radconf.inference import load_predictor
    from radconf.models import ModelSpec
    from radconf.nnunet_compat.checkpoints import safe_load_checkpoint
    from radconf.registry import find_class
    from radconf.training import (
        TrainingOptions,
        build_trainer,
        load_pretrained_weights,
        train,
    )

    from .conftest import PLANS as plans_name

    assert find_class("nnUNetTrainerSliceContext5", "trainer") is nnUNetTrainerSliceContext5
    for module in ("nnunetv2.training.nnUNetTrainer.nnUNetTrainer", "nnunetv2.inference.predict_from_raw_data"):
        assert importlib.import_module(module).default_num_processes == 1
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="use -c 2d"):
        build_trainer(990, "3d_fullres", 0, trainer="nnUNetTrainerSliceContext5", plans=plans_name, device="cpu")

    fold = train(990, "2d", 0, trainer="nnUNetTrainerSliceContext5", plans=plans_name, device="cpu",
                 options=TrainingOptions(epochs=1, iterations_per_epoch=2))
    assert (fold / "checkpoint_final.pth").is_file()
    assert (fold / "validation" / "summary.json").is_file()  # nnU-Net's final validation ran with 5-slice inputs
    # --c resumes from the checkpoint (epoch 1 only, nnU-Net's log of the resumed run says so); pretrained weights
    # fit a fresh 2.5D network
    logs_before = set(fold.glob("training_log_*.txt"))
    train(990, "2d", 0, trainer="nnUNetTrainerSliceContext5", plans=plans_name, device="cpu", continue_training=True,
          options=TrainingOptions(epochs=2, iterations_per_epoch=2, validate=False, change_settings=True))
    assert safe_load_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] == 2  # epochs 0 and 1 done
    (resumed_log,) = set(fold.glob("training_log_*.txt")) - logs_before
    assert "Epoch 1" in resumed_log.read_text() and "Epoch 0\n" not in resumed_log.read_text()
    fresh = build_trainer(990, "2d", "all", trainer="nnUNetTrainerSliceContext5", plans=plans_name, device="cpu")
    fresh.initialize()
    assert load_pretrained_weights(fresh.network, fold / "checkpoint_final.pth")

    spec = ModelSpec("990", trainer="nnUNetTrainerSliceContext5", plans=plans_name, configuration="2d", folds=("0",))
    predictor = load_predictor(spec, device="cpu")
    assert isinstance(predictor, SliceContextPredictor)
    first_conv = next(m for m in predictor.network.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 1 * S  # the phantom has one CT channel
    # the trained network, as loaded, gets slice d with its neighbours d-2..d+2 (edge-replicated) in channels 0..4
    trained = predictor.network
    recorder = Recorder(trained)
    # one tile per slice, no mirroring, no Gaussian weighting: the logits are the network's output (stored as fp16)
    predictor.network, predictor.use_mirroring, predictor.use_gaussian = recorder, False, False
    patch = tuple(predictor.configuration_manager.patch_size)
    torch.manual_seed(0)
    volume = torch.randn(1, 3, *patch)
    logits = predictor.predict_sliding_window_return_logits(volume)
    assert len(recorder.inputs) == 3 and logits.shape[1:] == (3, *patch)
    with torch.no_grad():
        for d in range(3):
            stacked = torch.from_numpy(_expected(volume.numpy(), d))[None]
            assert torch.equal(recorder.inputs[d], stacked), d
            assert torch.allclose(logits[:, d].float(), trained(stacked)[0].float(), rtol=1e-2, atol=1e-2), d

    phantom = planned_2d["nnUNet_raw"] / "Dataset990_Phantom"
    output = tmp_path / "predictions"
    predict(phantom / "imagesTs", output, [spec], run=RunOptions(device="cpu", num_processes=1,
                                                                 save_probabilities=True))
    image_file = min((phantom / "imagesTs").glob("*_0000.nii.gz"))
    case = image_file.name[: -len("_0000.nii.gz")]
    prediction = sitk.ReadImage(str(output / f"{case}.nii.gz"))
    image = sitk.ReadImage(str(image_file))
    assert prediction.GetSize() == image.GetSize()
    assert np.allclose(prediction.GetSpacing(), image.GetSpacing())
    assert np.allclose(prediction.GetOrigin(), image.GetOrigin())
    labels = sitk.GetArrayFromImage(prediction)
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4}
    # the label map is the argmax of the exported class probabilities, which are a varying, normalised map
    probabilities = np.load(output / f"{case}.npz")["probabilities"]
    assert probabilities.shape == (5, *labels.shape)
    np.testing.assert_allclose(probabilities.sum(0), 1, atol=1e-3)
    np.testing.assert_array_equal(probabilities.argmax(0), labels)
    assert np.ptp(probabilities[0]) > 0.01
