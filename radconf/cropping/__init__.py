"""Localise, crop, segment: a volume of interest around structures, cut out with its world geometry and put back.

- :mod:`radconf.cropping.boxes`: :class:`CropBox` (a voxel box and its full image's grid, to/from JSON),
  :func:`box_around` (the labels' bounding box grown by a margin in mm), :func:`crop` and :func:`paste`.
- :mod:`radconf.cropping.dataset`: :func:`crop_dataset` (command ``radconf_crop_dataset``), a raw dataset cropped
  around some of its labels (or around a localiser model's predictions of them), with ``crop_boxes.json``.
- :mod:`radconf.cropping.localized`: :func:`predict_localized` (``radconf_predict --localizer``): the localiser runs
  on the whole images, the fine model(s) on each case's box, the results are pasted back onto the full grid.

Imports nothing heavy: SimpleITK is imported by the functions that use it.
"""
from __future__ import annotations

from radconf.cropping.boxes import CropBox, box_around, box_of_label_map, crop, margin_voxels, paste

__all__ = ["CropBox", "box_around", "box_of_label_map", "crop", "margin_voxels", "paste"]
