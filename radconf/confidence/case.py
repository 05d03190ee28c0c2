"""One fused case: the level map and counts on the image grid, reader agreement, the masks cropped to their box."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radconf.confidence.fusion import Agreement, Fusion, reader_of, staple
from radconf.io.images import Geometry

Box = tuple[slice, ...]


@dataclass(frozen=True)
class CaseFusion:
    """One case fused: full-grid levels/counts, agreement, and the binary masks cropped to ``box``."""

    geometry: Geometry  # of the case's image (channel 0); outputs are written with it
    fusion: Fusion  # on the image's full grid (numpy (z, y, x) order)
    agreement: Agreement
    box: Box  # union of the masks' bounding boxes (empty slices if every mask is empty)
    masks: dict[str, np.ndarray] = field(repr=False)  # bool, cropped to ``box``

    @property
    def levels(self) -> np.ndarray:
        return self.fusion.levels

    @property
    def majority(self) -> np.ndarray:
        """Majority-vote consensus (more than half of the masks), uint8 0/1 on the full grid."""
        return self.fusion.majority.view(np.uint8)

    @property
    def n_readers(self) -> int:
        return len({reader_of(name) for name in self.masks})

    def volumes_ml(self) -> list[float]:
        """Volume (ml) of ``level >= L`` for L = 1..K."""
        per_level = np.bincount(self.fusion.levels[self.box].ravel(), minlength=self.fusion.k + 1)
        at_least = np.cumsum(per_level[::-1])[::-1]  # at_least[L] = voxels with level >= L
        return [float(v) * self.geometry.voxel_volume_ml for v in at_least[1: self.fusion.k + 1]]

    def full(self, cropped: np.ndarray) -> np.ndarray:
        """``cropped`` (an array over ``box``) placed on the full grid (zeros elsewhere)."""
        out = np.zeros(self.fusion.levels.shape, cropped.dtype)
        out[self.box] = cropped
        return out

    def staple(self) -> np.ndarray:
        """SimpleITK STAPLE consensus (uint8 0/1), computed on the full grid: STAPLE's background statistics
        depend on the volume it sees, so cropping would change its answer."""
        return staple([self.full(mask.view(np.uint8)) for mask in self.masks.values()]).view(np.uint8)
