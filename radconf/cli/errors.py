"""User-facing error handling shared by the radconf_* commands.

A user error (:class:`radconf.errors.RadconfError`) prints one line, ``radconf: error: ...``, and exits 2. So does an
operating-system error about a path (missing, exists, permission, not a folder): its file and a fix, no traceback.
Anything else is a bug or a failure of the machine (CUDA out of memory, a torch or nnU-Net error): it keeps its
traceback, with a line saying so, and exits 1. ``RADCONF_DEBUG=1`` re-raises user errors too. Python warnings are
printed as ``radconf: warning: ...`` lines, without source lines.
"""
from __future__ import annotations

import errno
import os
import sys
import traceback
import warnings
from collections.abc import Callable

from radconf.errors import RadconfError

_OS_FIXES = {
    errno.ENOENT: "check the path (it does not exist)",
    errno.EEXIST: "remove it or choose another output",
    errno.EACCES: "check its permissions or choose a folder you can write to",
    errno.EPERM: "check its permissions or choose a folder you can write to",
    errno.ENOTDIR: "a file stands where a folder is expected; check the path",
    errno.EISDIR: "a folder stands where a file is expected; check the path",
    errno.ENOSPC: "free disk space (or choose a disk with room) and run again",
    errno.EROFS: "the file system is read-only; choose a writable output folder",
}


def os_error_line(error: OSError) -> str | None:
    """One line for an OSError about a path (its file and a fix), or None for other OS errors."""
    fix = _OS_FIXES.get(error.errno)
    if fix is None:
        return None
    names = " -> ".join(str(n) for n in (error.filename, error.filename2) if n is not None)
    return f"{error.strerror or error}: {names or '(no file name)'}; {fix}."


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"radconf: warning: {message}\n"


def run_cli(function: Callable[[], None]) -> int:
    """Runs a command body and turns its outcome into an exit code (0 ok, 2 user error, 1 unexpected error)."""
    debug = bool(os.environ.get("RADCONF_DEBUG"))
    formatwarning = warnings.formatwarning
    if not debug:
        warnings.formatwarning = _format_warning
    try:
        function()
    except RadconfError as error:
        if debug:
            raise
        print(f"radconf: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("radconf: interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        line = None if debug else os_error_line(error)
        if line is None:
            return _unexpected()
        print(f"radconf: error: {line}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - not a user error: show everything
        return _unexpected()
    finally:
        warnings.formatwarning = formatwarning
    return 0


def _unexpected() -> int:
    traceback.print_exc()
    print("radconf: unexpected error (the traceback above). If it is not a failure of this machine (memory, GPU, "
          "disk), please report it with the traceback and the command line.", file=sys.stderr)
    return 1
