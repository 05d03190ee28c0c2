"""Every reach into nnU-Net's internals, each guarded by a fast tripwire test in ``tests/nnunet_compat/``.

- ``checkpoints``: safe checkpoint loading, trainer-state restore (nnU-Net's dict branch is broken in 2.8.1),
  the plain network under DDP/``torch.compile`` wrappers;
- ``substitution``: a data loader or predictor class swapped into nnU-Net's trainer module for one call;
- ``export``: logits -> probabilities on the image grid with nnU-Net's export function;
- ``workers``: nnU-Net's spawned planning and inference workers as threads of the command (``-np 1``);
- ``losses``: the settings of nnU-Net's Dice + CE loss (rebuilt as the marginal loss) and a batch's case keys;
- ``extra_channels``: int16 channels stacked onto a dataset's segmentation, cropped with the patch by nnU-Net's loader.
"""
