"""Dropout and DropBlock: the module on hand-checked tensors, networks built from a cpu-preset plan, Monte Carlo
dropout's inference switch, the trainers' settings (checked, recorded, reused on resume) and radconf_train's flags."""
from __future__ import annotations

import copy
import json
import math
import pydoc
from pathlib import Path

import numpy as np
import pytest
import torch
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from radconf.trainers.dropout import DropBlockTrainer, DropoutTrainer
from scipy import ndimage
from torch import nn

from radconf.cli import train as train_cli
from radconf.errors import InvalidInput
from radconf.nnunet_compat.intensity import RadconfConfigurationManager
from radconf.training import TrainingOptions, build_trainer, check_settings, configure_trainer
from radconf.uncertainty.dropout import (
    DROPOUT_FILE,
    DropBlock,
    DropoutSettings,
    arch_kwargs_with_dropout,
    block_mask,
    configure_dropout,
    dropout_after_nonlinearity,
    dropout_modules,
    has_dropout,
    in_decoder,
    mc_dropout,
    read_dropout_settings,
    write_dropout_settings,
)

from .conftest import PLANS

# --- DropBlock -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3, 9, 10), (2, 3, 6, 9, 10)], ids=["2d", "3d"])
def test_dropblock_is_the_identity_in_eval_mode_and_at_p_0(shape):
    x = torch.randn(shape)
    assert torch.equal(DropBlock(0.5, 3).eval()(x), x)
    assert torch.equal(DropBlock(0.0, 3).train()(x), x)


def test_gamma_by_hand():
    assert DropBlock(0.1, 3).gamma((10, 10, 10)) == pytest.approx(0.1 / 27 * 1000 / 8**3)
    assert DropBlock(0.1, 3).gamma((10, 12)) == pytest.approx(0.1 / 9 * 120 / (8 * 10))
    assert DropBlock(0.2, 1).gamma((5, 6, 7)) == pytest.approx(0.2)  # element-wise: gamma = p
    # an axis shorter than the block: the block spans it (2 voxels), one centre along it
    assert DropBlock(0.1, 3).gamma((2, 10, 10)) == pytest.approx(0.1 * 200 / (2 * 9 * 1 * 64))
    assert DropBlock(0.9, 5).gamma((3, 3)) == pytest.approx(0.9)  # one centre: the block is the whole map


@pytest.mark.parametrize("shape", [(4, 8, 32, 32, 32), (16, 16, 64, 64)], ids=["3d", "2d"])
def test_block_size_1_drops_single_activations_at_the_rate_and_keeps_the_mean(shape):
    torch.manual_seed(0)
    x = torch.rand(shape) * 2 + 1e-3  # > 0: a zero in the output is a dropped activation
    p, n = 0.3, x.numel()
    y = DropBlock(p, 1).train()(x)
    dropped = y == 0
    assert abs(dropped.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)  # binomial sd: 4.6e-4
    kept = int((~dropped).sum())
    torch.testing.assert_close(y[~dropped], x[~dropped] * n / kept)  # scaled by mask size / kept count
    # E[output] = input: the sum ratio's sd is sqrt(p / (1 - p)) * cv(x) / sqrt(n) ~ 4e-4
    assert abs(y.sum().item() / x.sum().item() - 1) < 5 * math.sqrt(p / (1 - p)) * (x.std() / x.mean()).item() / \
        math.sqrt(n)


@pytest.mark.parametrize("spatial", [(9, 9), (7, 9, 8)], ids=["2d", "3d"])
def test_a_single_seed_zeroes_exactly_its_block(spatial):
    seeds = torch.zeros((1, 2, *spatial))
    centre = tuple(s // 2 for s in spatial)
    seeds[(0, 1, *centre)] = 1
    mask = block_mask(seeds, 3)
    expected = torch.ones_like(seeds)
    expected[(0, 1, *(slice(c - 1, c + 2) for c in centre))] = 0
    assert torch.equal(mask, expected)
    even = block_mask(seeds, 2)  # an even block: the centre and one voxel after it along each axis
    expected = torch.ones_like(seeds)
    expected[(0, 1, *(slice(c, c + 2) for c in centre))] = 0
    assert torch.equal(even, expected)
    assert torch.equal(block_mask(seeds, 1), 1 - seeds)


@pytest.mark.parametrize("shape", [(2, 3, 40, 40), (2, 3, 16, 18, 20)], ids=["2d", "3d"])
def test_sampled_drops_are_whole_blocks_inside_the_map(shape):
    torch.manual_seed(3)
    y = DropBlock(0.1, 3).train()(torch.ones(shape))
    cube = np.ones((3,) * (len(shape) - 2), dtype=bool)
    blocks = 0
    for sample in range(shape[0]):
        for channel in range(shape[1]):
            zero = (y[sample, channel] == 0).numpy()
            # the zeros are a union of whole 3-voxel cubes inside the map (opening keeps exactly those;
            # a block cut by the border would be removed by it)
            np.testing.assert_array_equal(ndimage.binary_opening(zero, structure=cube), zero)
            blocks += int(zero.sum() > 0)
    assert blocks == shape[0] * shape[1]  # every map got blocks at p = 0.1
    assert 0.05 < float((y == 0).float().mean()) < 0.15  # about p (overlapping blocks drop a little less)


# --- settings and files ----------------------------------------------------------------------------------------------

def test_settings_check_round_trip_and_files(tmp_path):
    settings = DropoutSettings(0.2, "decoder", 3)
    assert settings.check() == settings and DropoutSettings(0, "both", np.int64(0)).check().rate == 0.0
    for bad, match in [((1.0, "both", 0), "--dropout"), ((-0.1, "both", 0), "--dropout"),
                       ((float("nan"), "both", 0), "--dropout"), ((True, "both", 0), "--dropout"),
                       ((0.1, "middle", 0), "--dropout_in"), ((0.1, "both", -1), "--dropblock_size"),
                       ((0.1, "both", 2.5), "--dropblock_size")]:
        with pytest.raises(InvalidInput, match=match):
            DropoutSettings(*bad).check()
    assert read_dropout_settings(tmp_path) is None  # a model trained without dropout
    write_dropout_settings(tmp_path, settings)
    assert json.loads((tmp_path / DROPOUT_FILE).read_text()) == {"rate": 0.2, "where": "decoder", "block_size": 3}
    assert read_dropout_settings(tmp_path) == settings
    for text, match in [("{", "is not valid JSON"), ('{"rate": 0.2}', "does not hold dropout settings"),
                        ('{"rate": 2, "where": "both", "block_size": 0}', r"--dropout must|Dropout rate")]:
        (tmp_path / DROPOUT_FILE).write_text(text)
        with pytest.raises(InvalidInput, match=match) as error:
            read_dropout_settings(tmp_path)
        assert str(tmp_path / DROPOUT_FILE) in str(error.value) and "\n" not in str(error.value)


# --- networks from a cpu-preset plan ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plan(trainer_datasets):
    """The 3d_fullres configuration of the plain phantom's cpu-preset plans."""
    folder = next(trainer_datasets.preprocessed.glob(f"Dataset{trainer_datasets.ids['plain']}_*"))
    plans_manager = PlansManager(str(folder / f"{PLANS}.json"))
    return plans_manager, plans_manager.get_configuration("3d_fullres")


def _convs_per_part(configuration) -> tuple[int, int]:
    kwargs = configuration.network_arch_init_kwargs
    return sum(kwargs["n_conv_per_stage"]), sum(kwargs["n_conv_per_stage_decoder"])


def test_arch_kwargs_name_the_dropout_op_and_leave_the_plans_alone(plan):
    _, configuration = plan
    kwargs = configuration.network_arch_init_kwargs
    before = copy.deepcopy(kwargs)
    required = configuration.network_arch_init_kwargs_req_import
    assert "dropout_op" in required
    element = arch_kwargs_with_dropout(kwargs, required, DropoutSettings(0.2, "both", 0))
    blocks = arch_kwargs_with_dropout(kwargs, required, DropoutSettings(0.3, "both", 5))
    assert kwargs == before and kwargs["dropout_op"] is None
    assert pydoc.locate(element["dropout_op"]) is nn.Dropout and element["dropout_op_kwargs"] == {"p": 0.2}
    assert pydoc.locate(blocks["dropout_op"]) is DropBlock
    assert blocks["dropout_op_kwargs"] == {"p": 0.3, "block_size": 5}
    unlisted = arch_kwargs_with_dropout(kwargs, [r for r in required if r != "dropout_op"],
                                        DropoutSettings(0.2, "both", 3))
    assert unlisted["dropout_op"] is DropBlock  # not resolved by nnU-Net: the class itself
    assert {k: v for k, v in element.items() if not k.startswith("dropout_op")} == \
        {k: v for k, v in kwargs.items() if not k.startswith("dropout_op")}


@pytest.mark.parametrize("trainer", [DropoutTrainer, DropBlockTrainer])
def test_built_network_has_one_dropout_per_conv_block_and_plain_weights(plan, trainer):
    plans_manager, configuration = plan
    plain = nnUNetTrainer.build_network_architecture(plans_manager, configuration, 1, 4, True)
    network = trainer.build_network_architecture(plans_manager, configuration, 1, 4, True)
    assert configuration.network_arch_init_kwargs["dropout_op"] is None  # the trainer's plans stay as planned
    modules = dropout_modules(network)
    encoder_convs, decoder_convs = _convs_per_part(configuration)
    conv_blocks = [m for m in network.modules() if isinstance(m, ConvDropoutNormReLU)]
    assert len(modules) == len(conv_blocks) == encoder_convs + decoder_convs
    assert sum(in_decoder(name) for name, _ in modules) == decoder_convs
    kind = DropBlock if trainer.dropblock_size else nn.Dropout
    assert all(type(m) is kind and m.p == 0.1 for _, m in modules)
    if kind is DropBlock:
        assert all(m.block_size == 3 for _, m in modules)
    assert list(network.state_dict()) == list(plain.state_dict())  # plain checkpoints load, and vice versa
    network.load_state_dict(plain.state_dict())
    plain.load_state_dict(network.state_dict())
    x = torch.randn(1, 1, *configuration.patch_size)
    with torch.no_grad():  # in eval mode the dropout network computes exactly the plain one
        torch.testing.assert_close(network.eval()(x)[0], plain.eval()(x)[0], rtol=0, atol=0)
    # a CLAHE plan's configuration manager keeps its class through the copy
    clahe = RadconfConfigurationManager(copy.deepcopy(configuration.configuration))
    assert len(dropout_modules(trainer.build_network_architecture(plans_manager, clahe, 1, 4, True))) == len(modules)


def test_nnunets_own_layout_shifts_the_norm_parameters_and_the_move_restores_them(plan):
    # tripwire: nnU-Net's ConvDropoutNormReLU lists the dropout between conv and norm in all_modules
    plans_manager, configuration = plan
    kwargs = arch_kwargs_with_dropout(configuration.network_arch_init_kwargs,
                                      configuration.network_arch_init_kwargs_req_import,
                                      DropoutSettings(0.1, "both", 0))
    built = get_network_from_plans(configuration.network_arch_class_name, kwargs,
                                   configuration.network_arch_init_kwargs_req_import, 1, 4, deep_supervision=True)
    plain = nnUNetTrainer.build_network_architecture(plans_manager, configuration, 1, 4, True)
    block = built.encoder.stages[0][0].convs[0]
    assert list(block.all_modules) == [block.conv, block.dropout, block.norm, block.nonlin]
    assert "encoder.stages.0.0.convs.0.all_modules.2.weight" in built.state_dict()
    assert list(built.state_dict()) != list(plain.state_dict())
    dropout_after_nonlinearity(built)
    assert list(block.all_modules) == [block.conv, block.norm, block.nonlin, block.dropout]
    assert list(built.state_dict()) == list(plain.state_dict())


@pytest.mark.parametrize("where", ["encoder", "decoder", "both"])
def test_configure_sets_p_where_asked_and_zero_elsewhere(plan, where):
    plans_manager, configuration = plan
    network = DropBlockTrainer.build_network_architecture(plans_manager, configuration, 1, 4, True)
    configure_dropout(torch.compile(network) if where == "both" else network, DropoutSettings(0.3, where, 5))
    for name, module in dropout_modules(network):
        part = "decoder" if in_decoder(name) else "encoder"
        assert module.p == (0.3 if where in (part, "both") else 0.0), name
        assert module.block_size == 5
    configure_dropout(network, DropoutSettings(0.3, "both", 0))  # DropBlock modules, block 0: element-wise
    assert all(m.block_size == 1 for _, m in dropout_modules(network))
    element = DropoutTrainer.build_network_architecture(plans_manager, configuration, 1, 4, True)
    with pytest.raises(InvalidInput, match="element-wise dropout"):
        configure_dropout(element, DropoutSettings(0.3, "both", 3))
    plain = nnUNetTrainer.build_network_architecture(plans_manager, configuration, 1, 4, True)
    with pytest.raises(InvalidInput, match="no dropout modules"):
        configure_dropout(plain, DropoutSettings(0.3, "both", 0))


def test_decoder_names():
    assert in_decoder("decoder.stages.0.convs.0.dropout") and in_decoder("distance_decoder.stages.1.convs.0.dropout")
    assert not in_decoder("encoder.stages.0.0.convs.0.dropout") and not in_decoder("decoders_helper.x")


# --- Monte Carlo dropout ---------------------------------------------------------------------------------------------

def _small_network(dropout: DropoutSettings | None) -> nn.Module:
    """A tiny 3D U-Net with batch norm (running statistics), from nnU-Net-style architecture keywords."""
    kwargs = {"n_stages": 2, "features_per_stage": [4, 8], "conv_op": "torch.nn.Conv3d", "kernel_sizes": [3, 3],
              "strides": [1, 2], "n_conv_per_stage": [1, 1], "n_conv_per_stage_decoder": [1], "conv_bias": True,
              "norm_op": "torch.nn.BatchNorm3d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
              "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {}}
    required = ["conv_op", "norm_op", "dropout_op", "nonlin"]
    if dropout is not None:
        kwargs = arch_kwargs_with_dropout(kwargs, required, dropout)
    torch.manual_seed(0)
    network = dropout_after_nonlinearity(get_network_from_plans(
        "dynamic_network_architectures.architectures.unet.PlainConvUNet", kwargs, required, 1, 2,
        deep_supervision=False))
    network.train()
    network(torch.randn(2, 1, 8, 8, 8))  # running statistics away from their initial values
    return network.eval()


@pytest.mark.parametrize("block_size", [0, 3])
def test_mc_dropout_samples_with_norm_layers_in_eval_mode(block_size):
    network = _small_network(DropoutSettings(0.3, "both", block_size))
    norms = [m for m in network.modules() if isinstance(m, nn.BatchNorm3d)]
    statistics = [(m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked)) for m in norms]
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        reference = network(x)
        with mc_dropout(network) as sampling:
            assert sampling is network
            first, second = network(x), network(x)
            assert all(not m.training for m in norms) and all(m.training for _, m in dropout_modules(network))
        assert not torch.allclose(first, second) and not torch.allclose(first, reference)
        assert not any(m.training for m in network.modules())  # all back in eval mode
        torch.testing.assert_close(network(x), reference, rtol=0, atol=0)  # deterministic outside
    for module, (mean, var, count) in zip(norms, statistics):
        assert torch.equal(module.running_mean, mean) and torch.equal(module.running_var, var)
        assert int(module.num_batches_tracked) == count


def test_mc_dropout_refuses_a_network_without_dropout():
    for network in (_small_network(None), _small_network(DropoutSettings(0.0, "both", 0))):
        assert not has_dropout(network)
        with pytest.raises(InvalidInput, match=r"--uncertainty tta.*--uncertainty folds") as error, \
                mc_dropout(network):
            pass
        assert "\n" not in str(error.value)
    network = _small_network(DropoutSettings(0.2, "both", 0))
    configure_dropout(network, DropoutSettings(0.2, "encoder", 0))
    assert has_dropout(network)


# --- the trainer and radconf_train ---------------------------------------------------------------------------------

def _trainer(options: TrainingOptions, name: str = "DropoutTrainerNoDA"):
    trainer = build_trainer(990, "3d_fullres", 0, trainer=name, plans=PLANS, device="cpu")
    configure_trainer(trainer, options)
    return trainer


def _p_by_part(network) -> dict[str, set[float]]:
    parts: dict[str, set[float]] = {"encoder": set(), "decoder": set()}
    for name, module in dropout_modules(network):
        parts["decoder" if in_decoder(name) else "encoder"].add(module.p)
    return parts


def test_trainer_records_its_settings_and_a_resume_reuses_them(trainer_dirs):
    trainer = _trainer(TrainingOptions(settings={"dropout_rate": 0.25, "dropout_where": "decoder"}))
    trainer.initialize()
    folder = Path(trainer.output_folder)
    assert json.loads((folder / DROPOUT_FILE).read_text()) == {"rate": 0.25, "where": "decoder", "block_size": 0}
    assert _p_by_part(trainer.network) == {"encoder": {0.0}, "decoder": {0.25}}
    assert all(type(m) is nn.Dropout for _, m in dropout_modules(trainer.network))
    resumed = _trainer(TrainingOptions())  # nothing given: the recorded settings, not the class defaults
    resumed.initialize()
    assert _p_by_part(resumed.network) == {"encoder": {0.0}, "decoder": {0.25}}
    assert (resumed.dropout_rate, resumed.dropout_where) == (0.25, "decoder")
    changed = _trainer(TrainingOptions(settings={"dropout_rate": 0.4}))  # one given: the others as recorded
    changed._record_dropout_settings()
    assert json.loads((folder / DROPOUT_FILE).read_text()) == {"rate": 0.4, "where": "decoder", "block_size": 0}


def test_trainer_refuses_blocks_it_does_not_build_before_building(trainer_dirs):
    trainer = _trainer(TrainingOptions(settings={"dropblock_size": 3}))
    with pytest.raises(InvalidInput, match="DropoutTrainerNoDA builds element-wise dropout.*DropBlockTrainer"):
        trainer.initialize()
    assert trainer.network is None and not (Path(trainer.output_folder) / DROPOUT_FILE).exists()
    trainer.dropout_rate = 1.5  # an API caller skipping TrainingOptions' checks
    with pytest.raises(InvalidInput, match="--dropout"):
        trainer._record_dropout_settings()
    blocks = _trainer(TrainingOptions(settings={"dropblock_size": 5, "dropout_rate": 0.2}), "DropBlockTrainerNoDA")
    blocks.initialize()
    assert {(m.p, m.block_size) for _, m in dropout_modules(blocks.network)} == {(0.2, 5)}


@pytest.mark.parametrize(("name", "value", "flag"), [
    ("dropout_rate", 1, "--dropout"), ("dropout_rate", -0.1, "--dropout"), ("dropout_rate", float("nan"), "--dropout"),
    ("dropout_rate", "0.1", "--dropout"), ("dropout_rate", True, "--dropout"),
    ("dropout_where", "middle", "--dropout_in"), ("dropout_where", None, "--dropout_in"),
    ("dropblock_size", -1, "--dropblock_size"), ("dropblock_size", 2.5, "--dropblock_size"),
    ("dropblock_size", True, "--dropblock_size")])
def test_training_options_refuse_bad_values_in_one_line(name, value, flag):
    with pytest.raises(InvalidInput, match=flag) as error:
        TrainingOptions(settings={name: value})
    assert "\n" not in str(error.value)


def test_flags_map_to_settings_and_other_trainers_refuse_them(tmp_path, monkeypatch, capsys):
    base = ["990", "3d_fullres", "0"]
    args = train_cli.build_parser().parse_args(base + ["--dropout", "0.2", "--dropout_in", "encoder",
                                                       "--dropblock_size", "5"])
    assert train_cli.training_options(args) == TrainingOptions(
        settings={"dropout_rate": 0.2, "dropout_where": "encoder", "dropblock_size": 5})
    TrainingOptions(settings={"dropout_rate": 0.0, "dropout_where": "both", "dropblock_size": 0})  # accepted
    check_settings(DropBlockTrainer, {"dropout_rate": 0.2, "dropout_where": "both", "dropblock_size": 3})
    monkeypatch.chdir(tmp_path)
    for folder in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(folder, str(tmp_path / folder))
    assert train_cli.main(base + ["--dropout", "0.2"]) == 2  # nnUNetTrainer
    err = capsys.readouterr().err
    assert "nnUNetTrainer does not accept the setting(s) dropout_rate" in err and "DropBlockTrainer" in err
    assert train_cli.main(base + ["-tr", "DropoutTrainer", "--dropout", "1"]) == 2
    assert "--dropout must be a number in [0, 1)" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
