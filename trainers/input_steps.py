"""Inference-side input steps of trainer mixins, composed into the one predictor class a trainer names.

A trainer mixin that changes what the network sees at inference (``AnatomyChannelsMixin`` encodes the organ masks,
``SliceContextMixin`` stacks neighbouring slices as channels) derives from ``InputStepsMixin`` and names its step, an
``nnUNetPredictor`` subclass that overrides ``predict_sliding_window_return_logits`` and calls ``super()``, in
``input_predictor``. Every trainer class then gets ``predictor_class``: the input predictors of all classes along its
MRO, combined by multiple inheritance, so a trainer with several such mixins applies every step (radconf's
``load_predictor`` and the trainer's own final validation both use ``predictor_class``).

Order: the steps run in MRO order (the first mixin's step sees the preprocessed image first), except that a step
whose predictor sets ``changes_channel_layout`` (slice stacking) runs after all the others, since per-channel steps
index the dataset's channels, which no longer exist as such once the layout has changed.
"""
from __future__ import annotations

from functools import cache

from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from radconf.nnunet_compat.substitution import substitute_in_trainer_module


def input_predictors(trainer_class: type) -> tuple[type, ...]:
    """The input predictors the classes of ``trainer_class`` contribute, in the order their steps run.

    Args:
        trainer_class: a trainer class (any class with ``input_predictor`` attributes along its MRO).

    Returns:
        Distinct predictor classes: MRO order, those with ``changes_channel_layout`` last.
    """
    found: list[type] = []
    for klass in trainer_class.__mro__:
        predictor = vars(klass).get("input_predictor")
        if predictor is not None and predictor not in found:
            found.append(predictor)
    return tuple(sorted(found, key=lambda p: bool(getattr(p, "changes_channel_layout", False))))


@cache
def combine_predictors(predictors: tuple[type, ...]) -> type:
    """One predictor class applying the steps of ``predictors`` in order (nnU-Net's predictor if there are none).

    Args:
        predictors: ``nnUNetPredictor`` subclasses, each calling ``super()`` in the hooks it overrides.

    Returns:
        The class itself for a single predictor, else their combination (cached: equal inputs give the same class).
    """
    if not predictors:
        return nnUNetPredictor
    if len(predictors) == 1:
        return predictors[0]
    name = "".join(p.__name__.removesuffix("Predictor") for p in predictors) + "Predictor"
    doc = "nnU-Net's predictor with the input steps of " + ", then ".join(p.__name__ for p in predictors) + "."
    return type(name, predictors, {"__module__": __name__, "__qualname__": name, "__doc__": doc})


class InputStepsMixin:
    """Base of the trainer mixins with an inference-side input step (see the module docstring).

    Subclasses set ``input_predictor``; every trainer class derived from them gets the composed ``predictor_class``,
    which the trainer's final validation uses in place of nnU-Net's predictor.
    """

    input_predictor: type | None = None
    predictor_class: type = nnUNetPredictor

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.predictor_class = combine_predictors(input_predictors(cls))

    def perform_actual_validation(self, save_probabilities: bool = False):
        # nnU-Net's validation (or the base trainer's override of it, e.g. confidence levels) with our predictor;
        # overriding instead would copy ~150 lines of nnU-Net, the substitution lasts only for this call
        with substitute_in_trainer_module("nnUNetPredictor", self.predictor_class):
            return super().perform_actual_validation(save_probabilities)
