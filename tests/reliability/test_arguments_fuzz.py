"""Every argument of every radconf_* command, fed invalid values: exit 2, one message naming the argument, no
traceback, nothing written.

The arguments are found by reading each command's parser (setup.py's console scripts), so a new flag is covered
the day it is added: numbers get non-numbers, NaN, infinity and values outside their range; choices get a value
outside them. A numeric flag must be checked by argparse (a ``radconf.cli.arguments`` type, or ``choices``), so a
bad value never reaches the work.
"""
from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

from radconf.cli import arguments

SETUP = Path(__file__).resolve().parents[2] / "setup.py"
COMMANDS = dict(re.findall(r'"(radconf_\w+) = (radconf\.cli\.\w+):main"', SETUP.read_text()))

# invalid values per argparse type; every numeric argument also gets the NOT_A_NUMBER values
NOT_A_NUMBER = ("x", "")
INVALID = {
    arguments.positive_int: ("0", "-1", "1.5"),
    arguments.non_negative_int: ("-1", "1.5"),
    arguments.positive_float: ("0", "-1", "nan", "inf"),
    arguments.non_negative_float: ("-1", "nan", "-inf"),
    arguments.finite_float: ("nan", "inf"),
    arguments.fraction: ("0", "1.5", "nan"),
    arguments.probability: ("-0.1", "1.5", "nan"),
    arguments.dataset_id: ("0", "1000", "1.5"),
}
# the commands' own checked types, by name
INVALID_BY_NAME = {"fdr_level": ("0", "1", "nan"), "levels_argument": ("1", "256", "2.5"), "_seed": ("-1", "1.5"),
                   "margin_mm": ("-1", "nan", "inf")}
CHECKED_TYPES = set(INVALID)


def _invalid_values(kind) -> tuple[str, ...] | None:
    """Invalid values of an argparse type; None for a type this test does not know (a new one: add it above)."""
    if kind in INVALID:
        return INVALID[kind]
    return INVALID_BY_NAME.get(getattr(kind, "__name__", ""))


def _parser(command: str) -> argparse.ArgumentParser:
    return importlib.import_module(COMMANDS[command]).build_parser()


def _options(command: str) -> list[argparse.Action]:
    return [a for a in _parser(command)._actions if a.option_strings and not isinstance(
        a, (argparse._HelpAction, argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._VersionAction))]


def _cases():
    for command in sorted(COMMANDS):
        for action in _options(command):
            flag = action.option_strings[0]
            values = list(_invalid_values(action.type) or ())
            if action.type not in (None, str):
                values += NOT_A_NUMBER
            if action.choices:
                values.append("no_such_choice")
            for value in values:
                yield pytest.param(command, action, value, id=f"{command} {flag} {value!r}")


def test_every_command_is_found():
    assert len(COMMANDS) == 20
    assert {"radconf_calibrate", "radconf_predict", "radconf_import_dicom", "radconf_crop_dataset"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_numeric_arguments_are_checked_by_argparse(command):
    """No plain int/float flag (a NaN, zero or negative value would reach the work, or a traceback, unchecked), and
    every checked type is known here, so that its invalid values are fed below."""
    unchecked = [a.option_strings[0] for a in _options(command) if a.type in (int, float) and not a.choices]
    assert not unchecked, f"{command}: give {unchecked} a radconf.cli.arguments type"
    unknown = [a.option_strings[0] for a in _options(command)
               if a.type not in (None, str, int, float) and _invalid_values(a.type) is None]
    assert not unknown, f"{command}: add the invalid values of the types of {unknown} to this test"


@pytest.mark.parametrize(("command", "action", "value"), list(_cases()))
def test_invalid_values_exit_2_naming_the_argument(command, action, value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path / name))
    count = action.nargs if isinstance(action.nargs, int) else 1
    argv = [action.option_strings[0], value, *(["1"] * (count - 1))]
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(COMMANDS[command]).main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2, err
    assert "Traceback" not in err
    named = [line for line in err.splitlines() if "error:" in line]
    assert len(named) == 1 and any(flag in named[0] for flag in action.option_strings), err
    assert list(tmp_path.iterdir()) == [], "nothing may be written for a refused argument"
