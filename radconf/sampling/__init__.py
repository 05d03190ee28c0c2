"""Where to sample training patches: false-positive voxels of an earlier model, mapped into preprocessed space."""
