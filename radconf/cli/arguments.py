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


def finite_float(text: str) -> float:
    return _number(float, text)


def positive_int(text: str) -> int:
    value = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = _number(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def positive_float(text: str) -> float:
    value = _number(float, text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    value = _number(float, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be 0 or more")
    return value


def fraction(text: str) -> float:
    """A number in (0, 1], e.g. the sliding-window step as a fraction of the patch."""
    value = _number(float, text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} must be greater than 0 and at most 1")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    value = _number(float, text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} must be between 0 and 1")
    return value


def dataset_id(text: str) -> int:
    """The id of a dataset to write: an integer in 1..999 (nnU-Net's range)."""
    value = _number(int, text)
    if not 1 <= value <= 999:
        raise argparse.ArgumentTypeError(f"{value} is not a dataset id: nnU-Net's ids are 1..999")
    return value
