"""Anatomy-guided models: organ masks as input channels (``channels``, ``dataset``, ``inputs``), distance-map
targets and their export (``distance``, ``distance_export``).
"""
