"""What a trainer class trains on: the dataset kind and the configuration it needs (for the tests and benchmarks that
run every trainer)."""
from __future__ import annotations


def dataset_kind(trainer: type) -> str:
    """``confidence`` (level trainers: a fused confidence-level dataset), ``anatomy`` (anatomy-channel inputs) or
    ``plain``."""
    from radconf.trainers.anatomy_channels import AnatomyChannelsMixin
    from radconf.trainers.confidence import _LevelTrainer

    if issubclass(trainer, _LevelTrainer):
        return "confidence"
    return "anatomy" if issubclass(trainer, AnatomyChannelsMixin) else "plain"


def trainer_configuration(trainer: type) -> str:
    """``2d`` for 2.5D (slice-context) trainers and 2D-only networks, else ``3d_fullres``."""
    from radconf.trainers.slice_context import SliceContextMixin

    two_d = issubclass(trainer, SliceContextMixin) or getattr(trainer, "radconf_dimensions", None) == (2,)
    return "2d" if two_d else "3d_fullres"
