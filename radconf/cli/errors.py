"""User-facing error handling shared by the radconf_* commands.

A user error (:class:`radconf.errors.RadconfError`) prints one line, ``radconf: error: ...``, and exits 2. Anything
else is a bug or a failure of the machine (CUDA out of memory, a torch or nnU-Net error): it keeps its traceback,
with a line saying so, and exits 1. ``RADCONF_DEBUG=1`` re-raises user errors too.
"""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

from radconf.errors import RadconfError


def run_cli(function: Callable[[], None]) -> int:
    """Runs a command body and turns its outcome into an exit code (0 ok, 2 user error, 1 unexpected error)."""
    try:
        function()
    except RadconfError as error:
        if os.environ.get("RADCONF_DEBUG"):
            raise
        print(f"radconf: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("radconf: interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - not a user error: show everything
        traceback.print_exc()
        print("radconf: unexpected error (the traceback above). If it is not a failure of this machine (memory, GPU, "
              "disk), please report it with the traceback and the command line.", file=sys.stderr)
        return 1
    return 0
