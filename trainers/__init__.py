"""nnUNetTrainer subclasses shipped with radconf (installed as ``radconf.trainers``)."""
from __future__ import annotations
