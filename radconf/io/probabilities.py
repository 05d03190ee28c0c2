"""nnU-Net's probability archives (``CASE.npz`` with a ``probabilities`` array): their shape without decoding, and
their voxels, with a truncated or corrupt archive named instead of a traceback."""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput

PROBABILITY_FIX = "predict the case again with --save_probabilities (or validate with --npz), or copy the file again"


def probability_shape(path: Path) -> tuple[int, ...]:
    """The shape of the ``probabilities`` array of a ``CASE.npz``, from the archive directory and the array header
    (no voxel data decoded); the stored size must be what the header describes.

    Raises:
        InvalidInput: the archive is truncated or corrupt, holds no ``probabilities``, or is not numeric, naming it.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "probabilities.npy" not in names:
                raise InvalidInput(f"{path} holds no 'probabilities' array (it has {', '.join(names) or 'nothing'}); "
                                   f"{PROBABILITY_FIX}.")
            info = archive.getinfo("probabilities.npy")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(member)
                header_bytes = member.tell()
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError) as error:
        if isinstance(error, InvalidInput):
            raise
        raise InvalidInput(f"{path} is not a readable probability file ({error}): it is truncated or corrupt; "
                           f"{PROBABILITY_FIX}.") from None
    if dtype.kind not in "fiu":
        raise InvalidInput(f"{path}: 'probabilities' has dtype {dtype}, not numbers; {PROBABILITY_FIX}.")
    if header_bytes + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != info.file_size:
        raise InvalidInput(f"{path} is truncated: its array header describes {tuple(shape)} {dtype} but the archive "
                           f"holds {info.file_size - header_bytes} data bytes; {PROBABILITY_FIX}.")
    return tuple(int(s) for s in shape)


def load_probabilities(path: Path) -> np.ndarray:
    """The ``probabilities`` of a ``CASE.npz``; a corrupt archive (bad CRC, cut stream) is named, never a traceback."""
    try:
        with np.load(path) as npz:
            return npz["probabilities"]
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, KeyError) as error:
        raise InvalidInput(f"{path} is not a readable probability file ({error}): it is truncated or corrupt; "
                           f"{PROBABILITY_FIX}.") from None
