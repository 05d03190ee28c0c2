"""User-facing error handling shared by the radconf_* commands: one clear line instead of a traceback."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, RuntimeError)


def run_cli(function: Callable[[], None]) -> int:
    """Runs a command body; user errors print ``radconf: error: ...`` and exit 2 (RADCONF_DEBUG=1 re-raises)."""
    try:
        function()
    except USER_ERRORS as error:
        if os.environ.get("RADCONF_DEBUG"):
            raise
        print(f"radconf: error: {error}", file=sys.stderr)
        return 2
    return 0
