"""Prediction at cohort scale: one part of a folder's cases per process or node (``-num_parts N -part_id I``)."""
from radconf.scale.parts import Part, active_part, in_part, part_file_name, part_input_folder

__all__ = ["Part", "active_part", "in_part", "part_file_name", "part_input_folder"]
