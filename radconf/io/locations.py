"""Where outputs may go: never into, onto or around an input (resolved paths, symlinks followed)."""
from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path

from radconf.errors import InvalidInput


def output_conflict(output: str | os.PathLike, folder: str | os.PathLike) -> str | None:
    """How an output folder collides with an input folder ("is", "lies inside", "contains"), or None."""
    out, source = Path(output).resolve(), Path(folder).resolve()
    if out == source:
        return "is"
    if out.is_relative_to(source):
        return "lies inside"
    if source.is_relative_to(out):
        return "contains"
    return None


def check_output_location(output: str | os.PathLike, inputs: Iterable[tuple[str, str | os.PathLike | None]],
                          flag: str = "-o", *, subject: str | None = None, fix: str | None = None,
                          relations: Collection[str] = ("is", "lies inside", "contains")) -> None:
    """Refuses an output folder that is, lies inside or contains one of the input folders.

    Args:
        output: the output folder (it need not exist).
        inputs: ``(what, folder)`` pairs, e.g. ``("the input folder -i", args.i)``; None folders are skipped.
        flag: the option that named the output, for the message.
        subject: how the message names the output (default ``"<flag> <output>"``).
        fix: the way out, may name ``{what}`` (default: a sibling folder of the input, e.g. ``-o images_output``).
        relations: the relations refused (a caller that writes inside an input on purpose leaves out "lies inside").

    Raises:
        InvalidInput: naming both folders and the fix, before anything is written.
    """
    for what, folder in inputs:
        if folder is None:
            continue
        relation = output_conflict(output, folder)
        if relation in relations:
            source = Path(folder).resolve()
            way_out = (fix.format(what=what) if fix is not None else
                       f"Choose an output folder outside it, e.g. {flag} {source.parent / f'{source.name}_output'}.")
            raise InvalidInput(f"{subject or f'{flag} {output}'} {relation} {what} ({folder}); radconf never writes "
                               f"into or around its inputs. {way_out}")
