"""User errors are one line and exit 2; anything else keeps its traceback and exits 1."""
from __future__ import annotations

import pytest

from radconf.cli.errors import run_cli
from radconf.errors import InvalidInput, MissingInput, MissingSetting, OutputExists, RadconfError


def _raise(error: BaseException):
    def body() -> None:
        raise error
    return body


@pytest.mark.parametrize("error", [InvalidInput("bad -d"), MissingInput("no file"), OutputExists("exists"),
                                   MissingSetting("nnUNet_raw not set")])
def test_user_errors_are_one_line(error, capsys):
    assert run_cli(_raise(error)) == 2
    err = capsys.readouterr().err
    assert err == f"radconf: error: {error}\n"
    assert isinstance(error, RadconfError)


@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory"), ValueError("an internal check"),
                                   KeyError("plans")])
def test_unexpected_errors_keep_their_traceback(error, capsys):
    assert run_cli(_raise(error)) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and str(error.args[0]) in err and "please report" in err


def test_success_and_debug(monkeypatch):
    assert run_cli(lambda: None) == 0
    monkeypatch.setenv("RADCONF_DEBUG", "1")
    with pytest.raises(InvalidInput):
        run_cli(_raise(InvalidInput("shown with its traceback")))


def test_user_errors_are_still_the_builtin_kinds():
    assert issubclass(InvalidInput, ValueError) and issubclass(MissingInput, FileNotFoundError)
    assert issubclass(OutputExists, FileExistsError) and issubclass(MissingSetting, RuntimeError)
