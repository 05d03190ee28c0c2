"""radconf's user errors: a problem with the user's input or setup, told in one line that names the file and the fix.

The commands print these without a traceback (exit 2); any other exception is a bug and keeps its traceback. Each
class also derives from the built-in exception it refines, so ``except ValueError`` and ``pytest.raises(ValueError)``
keep working.
"""
from __future__ import annotations


class RadconfError(Exception):
    """Base class of the errors a user can fix."""


class InvalidInput(RadconfError, ValueError):
    """An argument, file content or combination of options radconf cannot use."""


class MissingInput(RadconfError, FileNotFoundError):
    """A file, folder, dataset, model or setting that does not exist."""


class OutputExists(RadconfError, FileExistsError):
    """An output that is already there and may not be replaced without ``--overwrite``."""


class MissingSetting(RadconfError, RuntimeError):
    """An environment setting (e.g. nnU-Net's folder variables) that is not set."""


class CommandFailed(RadconfError, RuntimeError):
    """A step run as a separate command failed; its log names the cause."""
