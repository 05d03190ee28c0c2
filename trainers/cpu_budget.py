"""Trainers for short CPU budgets (the demo, the phantom benchmarks): converge in ~1000 iterations on a few cores.

nnU-Net's defaults are tuned for 250 000 iterations on a GPU. With ~1000 iterations, batch 2 and a small network,
its multi-class model finds small structures late and sometimes not at all (measured on the phantom: GTV pseudo-Dice
still 0 after 19 of 20 epochs in one run, 0.91 held-out Dice in another). ``CPUBudgetTrainer`` = nnU-Net without
data augmentation (``nnUNetTrainerNoDA``) and with every patch centred on a foreground voxel of a random structure
(``oversample_foreground_percent = 1``), so each structure is seen from the first iterations. Use nnU-Net's default
trainer on real data and a GPU.
"""
import torch
from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoDA import nnUNetTrainerNoDA


class CPUBudgetTrainer(nnUNetTrainerNoDA):
    """nnUNetTrainerNoDA with all patches foreground-centred."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.oversample_foreground_percent = 1.0
