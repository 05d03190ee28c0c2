"""Argument conventions shared by the radconf_* commands (documentation/commands.md, "Conventions").

- Spelling: nnU-Net's. Single-dash short flags where nnU-Net has them (``-i -o -d -c -tr -p -f -chk -np -device``),
  ``--long_names`` with underscores. Old spellings (``--iterations-per-epoch``) stay as aliases for one release.
- ``--help`` shows every default (:class:`HelpFormatter`).
- Numbers are checked by argparse (the ``type=`` functions below), so a bad value is one line, exit 2, before any
  work starts.
"""
from __future__ import annotations

import argparse
import math


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and appends "(default: X)" to every option that has a default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def make_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with radconf's help layout (allow_abbrev off: a typo never matches another flag)."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter,
                                   allow_abbrev=False)


def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _checked(kind, accept, requirement: str, name: str, doc: str):
    """An argparse type: ``kind`` values for which ``accept(value)`` holds, else "<value> <requirement>"."""
    def check(text: str):
        value = _number(kind, text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{value:g} {requirement}" if kind is float else f"{value} {requirement}")
        return value

    check.__name__, check.__doc__ = name, doc
    return check


finite_float = _checked(float, lambda v: True, "", "finite_float", "A finite number.")
positive_int = _checked(int, lambda v: v >= 1, "must be at least 1", "positive_int", "An integer >= 1 (a count).")
non_negative_int = _checked(int, lambda v: v >= 0, "must be 0 or more", "non_negative_int", "An integer >= 0.")
positive_float = _checked(float, lambda v: v > 0, "must be greater than 0", "positive_float", "A number > 0.")
non_negative_float = _checked(float, lambda v: v >= 0, "must be 0 or more", "non_negative_float", "A number >= 0.")
fraction = _checked(float, lambda v: 0 < v <= 1, "must be greater than 0 and at most 1", "fraction",
                    "A number in (0, 1], e.g. the sliding-window step as a fraction of the patch.")
probability = _checked(float, lambda v: 0 <= v <= 1, "must be between 0 and 1", "probability", "A number in [0, 1].")
dataset_id = _checked(int, lambda v: 1 <= v <= 999, "is not a dataset id: nnU-Net's ids are 1..999", "dataset_id",
                      "The id of a dataset to write: an integer in 1..999 (nnU-Net's range).")
