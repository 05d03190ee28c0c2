"""nnU-Net ExperimentPlanner subclasses shipped with radconf (installed as ``radconf.planners``)."""
