"""The ``cpu`` and ``cpu_resenc`` presets: nnU-Net's own planning (plain or residual-encoder U-Net) with a small network and a small memory budget.

Fingerprinting, target spacing, topology and the patch/batch-size search are nnU-Net's; only the knobs that set
the network's width and the memory the search may fill change, so that training on a few CPU cores is practical
(seconds per iteration instead of tens).
"""
from __future__ import annotations

from typing import List, Tuple, Union

from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import (
    ExperimentPlanner,
)
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
    ResEncUNetPlanner,
)

CPU_PLANS_NAME = "radconfCPUPlans"
CPU_RESENC_PLANS_NAME = "radconfCPUResEncPlans"


class _SmallNetwork:
    """8-64 features, one conv (block) per decoder stage, batch >= 2, on top of the planner it is mixed into."""

    base_num_features = 8
    max_num_features = 64

    def _make_small(self) -> None:
        self.UNet_base_num_features = self.base_num_features
        self.UNet_max_features_2d = self.max_num_features
        self.UNet_max_features_3d = self.max_num_features
        self.UNet_blocks_per_stage_decoder = (1,) * len(self.UNet_blocks_per_stage_decoder)
        self.UNet_min_batch_size = 2

    def generate_data_identifier(self, configuration_name: str) -> str:
        # spacing and resampling equal nnU-Net's defaults, so the default plans' preprocessed data is shared
        if configuration_name in ("2d", "3d_fullres"):
            return "nnUNetPlans_" + configuration_name
        return self.plans_identifier + "_" + configuration_name


class CPUPresetPlanner(_SmallNetwork, ExperimentPlanner):
    """Plain U-Net with 8-64 features and one conv per decoder stage, planned for a ~0.05 GB budget."""

    def __init__(self, dataset_name_or_id: Union[str, int],
                 gpu_memory_target_in_gb: float = 0.05,
                 preprocessor_name: str = 'DefaultPreprocessor', plans_name: str = CPU_PLANS_NAME,
                 overwrite_target_spacing: Union[List[float], Tuple[float, ...]] = None,
                 suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self._make_small()


class CPUResEncPresetPlanner(_SmallNetwork, ResEncUNetPlanner):
    """nnU-Net's residual-encoder U-Net (1, 3, 4, 6, ... residual blocks per encoder stage) with 8-64 features,
    planned for the same ~0.05 GB budget: the cpu preset's second architecture (ensemble pools)."""

    def __init__(self, dataset_name_or_id: Union[str, int],
                 gpu_memory_target_in_gb: float = 0.05,
                 preprocessor_name: str = 'DefaultPreprocessor', plans_name: str = CPU_RESENC_PLANS_NAME,
                 overwrite_target_spacing: Union[List[float], Tuple[float, ...]] = None,
                 suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self._make_small()
