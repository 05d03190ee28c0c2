"""Weighted ensembles: a common output space and streaming accumulation (``space``), the weight optimiser
(``statistics``, ``optimiser``), fitting on cross-validation exports (``fitting``), weights files (``weights``),
prediction from images (``prediction``) and from saved probabilities (``folders``), shared outputs (``outputs``).
"""
