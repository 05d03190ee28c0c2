"""The papers' networks beside nnU-Net's U-Nets: attention gates on the skips (seed 000), ResNet34-FPN (seed 002) and
DeepLabv3+ (seed 004) for 2D configurations. The trainers in ``radconf.trainers.networks`` build them from the plans."""
