"""CTV/PTV margins on folders of label maps (``radconf_margin``): a GTV grown by a margin in patient directions,
around barrier structures, cut to the body. Built on :mod:`radconf.contours`; see ``documentation/contours.md``."""
from __future__ import annotations

from radconf.margins.api import CaseReport, GrownCase, check_margin, grow_case, grow_folder

__all__ = ["CaseReport", "GrownCase", "check_margin", "grow_case", "grow_folder"]
