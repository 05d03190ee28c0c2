"""The optimiser and a late loss switch of any nnU-Net trainer, set on the trainer instance (its class unchanged).

nnU-Net builds the optimiser and its poly learning-rate schedule in ``nnUNetTrainer.initialize`` by calling
``self.configure_optimizers()`` (SGD, momentum 0.99, Nesterov, ``self.initial_lr``, ``self.weight_decay``), and
starts every epoch with ``self.on_train_epoch_start()`` before ``train_step`` applies ``self.loss``. radconf sets
its own ``configure_optimizers`` (Adam/AdamW/SGD on the same schedule) and wraps ``on_train_epoch_start`` on the
instance; ``tests/nnunet_compat/test_optim.py`` guards both call sites.
"""
from __future__ import annotations

import types
from collections.abc import Callable

import torch

#: --optimizer name -> (torch optimiser, keyword arguments besides lr and weight decay)
OPTIMIZERS: dict[str, tuple[type, dict]] = {
    "sgd": (torch.optim.SGD, {"momentum": 0.99, "nesterov": True}),  # nnU-Net's own
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
}
#: initial learning rate when --optimizer is given without --initial_lr (SGD: nnU-Net's; Adam: the papers' 1e-3)
DEFAULT_LR = {"sgd": 1e-2, "adam": 1e-3, "adamw": 1e-3}


def optimizer_name(optimizer: torch.optim.Optimizer) -> str:
    """``sgd``/``adam``/``adamw`` for those classes, else the class name (e.g. a trainer's own choice)."""
    for name, (klass, _) in OPTIMIZERS.items():
        if type(optimizer) is klass:
            return name
    return type(optimizer).__name__


def describe_optimizer(optimizer: torch.optim.Optimizer) -> dict:
    """The optimiser's class and hyper-parameters as plain JSON (what a run records beside its checkpoint)."""
    keep = ("lr", "weight_decay", "momentum", "nesterov", "betas", "eps", "amsgrad")
    return {"name": optimizer_name(optimizer),
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in optimizer.defaults.items() if k in keep}}


def use_optimizer(trainer, name: str) -> None:
    """From now on ``trainer.initialize()`` builds optimiser ``name`` with ``trainer.initial_lr`` and
    ``trainer.weight_decay``, on nnU-Net's poly schedule over ``trainer.num_epochs``."""
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

    klass, extra = OPTIMIZERS[name]

    def configure_optimizers(self):
        optimizer = klass(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay, **extra)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    trainer.configure_optimizers = types.MethodType(configure_optimizers, trainer)


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """Sets every parameter group's weight decay (after a checkpoint's optimiser state restored the old one)."""
    for group in optimizer.param_groups:
        group["weight_decay"] = weight_decay


def switch_loss_at(trainer, first_epoch: int, switch: Callable[[torch.nn.Module], torch.nn.Module],
                   description: str) -> None:
    """From epoch ``first_epoch`` on (also when a resumed run starts past it), ``trainer.loss`` becomes
    ``switch(trainer.loss)``, once; the switch is logged."""
    original = trainer.on_train_epoch_start
    state = {"switched": False}

    def on_train_epoch_start():
        original()
        if not state["switched"] and trainer.current_epoch >= first_epoch:
            trainer.loss = switch(trainer.loss)
            state["switched"] = True
            trainer.print_to_log_file(f"radconf: from epoch {trainer.current_epoch} on the loss is {description}")

    trainer.on_train_epoch_start = on_train_epoch_start
