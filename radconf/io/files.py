"""Atomic file writing, staged folders and outputs removed on failure: a reader never sees a half-written file or
dataset, and a failed command leaves its output folder as it found it."""
from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _temporary_sibling(path: Path) -> Path:
    """A unique, not yet existing name next to ``path`` (keeps its extensions). The file is created by the writer, so
    it gets the usual permissions (umask), not mkstemp's owner-only 0600."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp{''.join(path.suffixes)}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes bytes so that readers never see a half-written file (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_write_with(path: str | os.PathLike, write: Any) -> Path:
    """Calls ``write(temporary_path)`` (a name next to ``path`` with the same extensions), then renames it into
    place: for writers that only take a file name (SimpleITK, nnU-Net's reader/writers, ``np.savez``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_image(path: str | os.PathLike, image: Any) -> Path:
    """Writes a SimpleITK image atomically; the temp file keeps the extension so SimpleITK picks the format."""
    import SimpleITK as sitk

    return atomic_write_with(path, lambda tmp: sitk.WriteImage(image, tmp, True))


def atomic_save_figure(figure: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Saves a matplotlib figure atomically (format taken from the file's extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", **savefig_kwargs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def publish_staged_folder(staging: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Renames a fully written ``staging`` folder to ``folder``; an existing ``folder`` (an earlier output the caller
    may replace) is moved aside first and deleted only once the new one is in place."""
    staging, folder = Path(staging), Path(folder)
    if not folder.exists():
        staging.rename(folder)
        return folder
    replaced = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.replaced")  # a new name: nothing is overwritten
    folder.rename(replaced)
    staging.rename(folder)
    shutil.rmtree(replaced)
    return folder


@contextmanager
def staged_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Writes a dataset folder all at once: yields an empty staging folder next to it; when the block ends
    normally it is published as ``folder`` (:func:`publish_staged_folder`), and on any error (or interruption) it is
    deleted and ``folder`` is left as it was. The staging folder has a new hidden name (``.<folder>.<id>.partial``),
    so no folder already there is ever deleted.

    The caller decides beforehand whether an existing ``folder`` may be replaced.
    """
    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.partial")
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish_staged_folder(staging, folder)


@contextmanager
def removed_on_failure(folder: str | os.PathLike) -> Iterator[Path]:
    """Leaves an output folder as it was found when the block fails (an error or an interruption).

    What the block created is deleted: the folder itself (and the parents it needed) when it did not exist, else
    the files and folders that are new in it. Files that were there before are kept.
    """
    folder = Path(folder)
    top = folder
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    existed = os.path.lexists(folder)
    before = _entries(folder) if existed else set()
    try:
        yield folder
    except BaseException:
        if not existed:
            shutil.rmtree(top, ignore_errors=True)
        else:
            _remove_new(folder, before, Path())
        raise


def _entries(folder: Path) -> set[Path]:
    found = set()
    for root, dirs, files in os.walk(folder):
        relative = Path(root).relative_to(folder)
        found.update(relative / name for name in dirs + files)
    return found


def _remove_new(folder: Path, before: set[Path], relative: Path) -> None:
    if not (folder / relative).is_dir():
        return
    for entry in os.scandir(folder / relative):
        name = relative / entry.name
        if name in before:
            if entry.is_dir(follow_symlinks=False):
                _remove_new(folder, before, name)
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
