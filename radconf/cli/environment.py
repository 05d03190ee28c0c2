"""Process set-up shared by the radconf_* commands (the only place radconf writes os.environ).

nnU-Net reads ``nnUNet_raw/_preprocessed/_results`` from the environment, including in the worker processes it
spawns, so a command that wants radconf's default folders must put them into its own process environment.
"""
from __future__ import annotations

import os

from radconf.paths import NnUNetPaths, resolve_nnunet_paths

_announced = False


def use_default_nnunet_paths() -> NnUNetPaths:
    """Fills unset nnU-Net folder variables with radconf's defaults for this process and says so once."""
    global _announced
    paths = resolve_nnunet_paths()
    for name, value in paths.as_environment().items():
        if name in paths.defaulted:
            os.environ[name] = value
    if paths.defaulted and not _announced:
        print(f"radconf: {', '.join(paths.defaulted)} not set; using {paths.raw.parent}/<name> "
              f"(set the variables or RADCONF_HOME to choose other folders).")
        _announced = True
    return paths
