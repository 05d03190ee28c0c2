"""Anatomy channels: organ masks fed to a target-volume model as extra input channels.

An anatomy dataset is an ordinary nnU-Net dataset whose extra image channels are binary organ masks (uint8 0/1, on
the image grid) with ``channel_names`` ``"noNorm"``, so nnU-Net's preprocessing only casts them to float32. Its
dataset.json says which channels they are::

    "radconf": {"anatomy": {
        "channels": {"1": "bladder", "2": "rectum"},     image channel -> structure name
        "encoding": "binary",                            or "ct": the mask filled with the CT channel's values
        "ct_channel": 0,                                 channel whose values fill "ct"-encoded masks
        "source_labels": {"bladder": 1, "rectum": 2},    label ids of the label maps the masks were cut from
        "source": {...}}}                                where they came from (free-form record)

The network never sees the stored channel directly: ``encode_anatomy`` binarises it (> 0.5, undoing the soft edges
that nnU-Net's spline resampling gives a mask) and, for ``"ct"``, multiplies it with the normalised CT channel. The
same function runs on training patches (after augmentation) and on whole images at inference.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from radconf.errors import InvalidInput
from radconf.raw.entry import RadconfEntry

ENCODINGS = ("binary", "ct")


MASK_CHANNEL_NAME = "noNorm"  # nnU-Net's NoNormalization: cast to float32, no intensity scaling


@dataclass(frozen=True)
class AnatomyChannels:
    """Which input channels of a dataset are organ masks and how the network sees them."""

    channels: Mapping[int, str]  # image channel index -> structure name
    encoding: str = "binary"
    ct_channel: int = 0
    source_labels: Mapping[str, int] = field(default_factory=dict)
    source: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if not self.channels:
            raise InvalidInput("An anatomy declaration needs at least one channel.")
        if self.encoding not in ENCODINGS:
            raise InvalidInput(f"Unknown anatomy encoding {self.encoding!r}; use one of {', '.join(ENCODINGS)}.")
        if self.ct_channel in self.channels:
            raise InvalidInput(f"ct_channel {self.ct_channel} is itself an anatomy channel ({self.channels}).")
        missing = [name for name in self.channels.values() if self.source_labels and name not in self.source_labels]
        if missing:
            raise InvalidInput(f"Anatomy structures {missing} have no entry in source_labels {dict(self.source_labels)}.")

    @property
    def indices(self) -> list[int]:
        """Anatomy channel indices, ascending."""
        return sorted(self.channels)

    @property
    def names(self) -> list[str]:
        """Structure names in channel order."""
        return [self.channels[i] for i in self.indices]

    def image_channels(self, num_channels: int) -> list[int]:
        """The channels that are not anatomy masks (the images proper), ascending."""
        return [c for c in range(num_channels) if c not in self.channels]

    def to_json(self) -> dict:
        return {"channels": {str(i): self.channels[i] for i in self.indices}, "encoding": self.encoding,
                "ct_channel": self.ct_channel, "source_labels": dict(self.source_labels), "source": dict(self.source)}

    @classmethod
    def from_json(cls, entry: Mapping, where: str = "dataset.json") -> AnatomyChannels:
        try:
            channels = {int(k): str(v) for k, v in entry["channels"].items()}
            return cls(channels=channels, encoding=entry.get("encoding", "binary"),
                       ct_channel=int(entry.get("ct_channel", 0)),
                       source_labels={str(k): int(v) for k, v in (entry.get("source_labels") or {}).items()},
                       source=dict(entry.get("source") or {}))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InvalidInput(f"{where}: invalid radconf anatomy declaration {dict(entry)!r} ({error}). Expected "
                             f"{{'channels': {{'1': 'bladder', ...}}, 'encoding': 'binary'|'ct', ...}}.") from None


def anatomy_of(dataset_json: Mapping, where: str = "dataset.json") -> AnatomyChannels | None:
    """The anatomy declaration of a dataset (None if it has none), checked against its ``channel_names``.

    Raises:
        ValueError: a declared channel that the dataset does not have, or one that nnU-Net would normalise.
    """
    entry = RadconfEntry.of(dataset_json, where).anatomy
    if not entry:
        return None
    anatomy = AnatomyChannels.from_json(entry, where)
    channel_names = {int(k): v for k, v in (dataset_json.get("channel_names") or dataset_json.get("modality")
                                            or {}).items()}
    for index in anatomy.indices + [anatomy.ct_channel]:
        if index not in channel_names:
            raise InvalidInput(f"{where}: anatomy channel {index} is not among the dataset's channels "
                             f"{sorted(channel_names)}.")
    normalised = [i for i in anatomy.indices if channel_names[i] != MASK_CHANNEL_NAME]
    if normalised:
        raise InvalidInput(f"{where}: anatomy channels {normalised} have channel_names "
                         f"{[channel_names[i] for i in normalised]}; mask channels must be {MASK_CHANNEL_NAME!r} so "
                         f"that nnU-Net does not intensity-normalise them like CT.")
    return anatomy


def encode_anatomy(image, anatomy: AnatomyChannels, channel_dim: int = 0):
    """What the network sees: anatomy channels binarised (> 0.5) and, for ``"ct"``, filled with the CT channel.

    Args:
        image: torch tensor with channels along ``channel_dim`` (``(c, ...)`` samples, ``(b, c, ...)`` batches).
        anatomy: the declaration.
        channel_dim: the channel axis.

    Returns:
        A new float tensor; the image channels are unchanged.
    """
    import torch

    index = torch.tensor(anatomy.indices, device=image.device)
    masks = (image.index_select(channel_dim, index) > 0.5).to(image.dtype)
    if anatomy.encoding == "ct":
        ct = image.narrow(channel_dim, anatomy.ct_channel, 1)
        masks = masks * ct
    out = image.clone()
    out.index_copy_(channel_dim, index, masks)
    return out


def masks_from_label_map(label_map: np.ndarray, source_labels: Mapping[str, int], names: Sequence[str],
                         where: str = "label map") -> list[np.ndarray]:
    """Binary uint8 masks of ``names`` cut from an integer label map (one mask per name, in order).

    Raises:
        ValueError: a name without a label id, naming the known ones.
    """
    unknown = [n for n in names if n not in source_labels]
    if unknown:
        raise InvalidInput(f"{where}: structures {unknown} have no label id; known: {dict(source_labels)}.")
    return [(label_map == source_labels[n]).astype(np.uint8) for n in names]


def anatomy_dataset_json(channel_names: Mapping[str, str], anatomy: AnatomyChannels, labels: Mapping[str, int],
                         train: list[str], test: list[str], ending: str, name: str, derived_from: str,
                         source_ids: Mapping[str, int], generator: str = "radconf.anatomy_dataset") -> dict:
    """The dataset.json of an anatomy dataset: the source's channels + one "noNorm" channel per structure, the
    targets as labels 1..n, and a "radconf" entry with the declaration (written by ``radconf_anatomy_dataset``)."""
    from_model = anatomy.source["kind"] == "model"
    entry = {
        "anatomy": anatomy.to_json(),
        "derived_from": derived_from,
        "target_source_labels": dict(source_ids),  # target name -> its id in the source's label maps
        "test_cases": test,
        # imagesTs of a model-derived dataset lack the masks: predict them with the organ model first
        "imagesTs_channels": (anatomy.image_channels(len(channel_names) + len(anatomy.indices)) if from_model
                              else list(range(len(channel_names) + len(anatomy.indices)))),
        "generator": generator,
    }
    if from_model:
        entry["inference"] = (f"two-stage: predict the anatomy with {anatomy.source['from']}, add the masks with "
                              f"radconf.anatomy_inputs.assemble_anatomy_inputs, then predict with this dataset's model")
    return {
        "channel_names": {**dict(channel_names), **{str(i): MASK_CHANNEL_NAME for i in anatomy.indices}},
        "labels": {"background": 0, **dict(labels)},
        "numTraining": len(train),
        "file_ending": ending,
        "name": name,
        "description": (f"{derived_from} with anatomy channels {anatomy.names} ({anatomy.source['kind']}: "
                        f"{anatomy.source['from']}) and targets {list(labels)}, written by radconf_anatomy_dataset"),
        "radconf": entry,
    }
