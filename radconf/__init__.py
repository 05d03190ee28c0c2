"""radconf: self-configuring radiotherapy auto-contouring on top of nnU-Net v2."""

__version__ = "0.1.0"
