"""Where radconf reads and writes: nnU-Net's three folders, resolved lazily.

``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` are honoured when set. When one is unset, radconf's
command-line tools use ``$RADCONF_HOME/<name>`` (``RADCONF_HOME`` defaults to ``~/radconf_data``) and say so once.
Library code only reads the environment; the command-line layer (``radconf.cli.environment``) is the one place that
fills in the defaults for the process it runs in, because nnU-Net itself reads these variables.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from radconf.errors import MissingSetting

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def radconf_home() -> Path:
    return Path(os.environ.get("RADCONF_HOME", Path.home() / "radconf_data")).expanduser()


@dataclass(frozen=True)
class NnUNetPaths:
    raw: Path
    preprocessed: Path
    results: Path
    defaulted: tuple[str, ...]  # which variables were unset and took radconf's default

    def as_environment(self) -> dict[str, str]:
        return {"nnUNet_raw": str(self.raw), "nnUNet_preprocessed": str(self.preprocessed),
                "nnUNet_results": str(self.results)}


def resolve_nnunet_paths(environ: dict[str, str] | None = None) -> NnUNetPaths:
    """nnU-Net's folders from the environment, with radconf's defaults for the unset ones (nothing is created)."""
    environ = os.environ if environ is None else environ
    values, defaulted = {}, []
    for name in NNUNET_FOLDERS:
        if environ.get(name):
            values[name] = Path(environ[name]).expanduser()
        else:
            values[name] = radconf_home() / name
            defaulted.append(name)
    return NnUNetPaths(values["nnUNet_raw"], values["nnUNet_preprocessed"], values["nnUNet_results"],
                       tuple(defaulted))


def require_nnunet_paths() -> NnUNetPaths:
    """The folders nnU-Net will use in this process; raises if any variable is unset.

    Raises:
        RuntimeError: naming the unset variables and how to set them.
    """
    paths = resolve_nnunet_paths()
    if paths.defaulted:
        raise MissingSetting(
            f"{', '.join(paths.defaulted)} not set. Export them (e.g. export nnUNet_raw=/data/nnUNet_raw) or use the "
            f"radconf_* commands, which default to {radconf_home()}/<name>.")
    return paths


@contextmanager
def environment_variables(variables: Mapping[str, str]) -> Iterator[None]:
    """``variables`` in this process's environment for the block (nnU-Net reads its folders from there, and so do
    the processes it or radconf spawns); the earlier values, or their absence, are restored after."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
