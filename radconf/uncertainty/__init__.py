"""Uncertainty from samples: MC dropout / DropBlock, test-time augmentation, ensemble members; calibration."""
