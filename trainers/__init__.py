"""nnUNetTrainer subclasses shipped with radconf (installed as ``radconf.trainers``)."""
