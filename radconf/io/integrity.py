"""Is a file whole? Truncated NIfTI images, corrupt archives and non-finite voxels, detected before they are used.

SimpleITK reads a NIfTI whose voxel data is cut short (a partial copy, a full disk) without an error and fills the
missing part with zeros: half a CT becomes 0 HU, half a label map is erased. :func:`check_complete` compares the
voxel data the header describes with what the file holds:

- ``.nii``: the file size against ``vox_offset + prod(dim) * bitpix / 8``;
- ``.nii.gz``: the gzip trailer (ISIZE, the decompressed size modulo 2**32) against the same number, an O(1) read.
  When they differ (a cut gzip stream, several gzip members, files over 4 GiB) the stream is decompressed once to
  count its bytes, so a corrupt stream and a short one are told apart.

Other formats are left to their readers (SimpleITK raises on a short ``.nrrd``/``.mha`` raw block).
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput

RECOPY_HINT = "copy it again from its source (or re-export it)"
_CHUNK = 1 << 20


def expected_nifti_bytes(path: Path) -> int | None:
    """``vox_offset + voxel bytes`` of a NIfTI-1/2 file (``.nii`` or ``.nii.gz``) from its header; None if the header
    cannot be parsed (the image reader then reports the file)."""
    try:
        import nibabel

        image = nibabel.load(str(path))
        header = image.header
        shape = header.get_data_shape()
        itemsize = header.get_data_dtype().itemsize
        offset = int(image.dataobj.offset)
    except Exception:  # noqa: BLE001 - not parseable as NIfTI: SimpleITK names the problem when it reads the file
        return None
    return offset + int(np.prod(shape, dtype=np.int64)) * int(itemsize)


def _gzip_trailer_size(path: Path) -> int | None:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() < 18:
            return None
        handle.seek(-4, os.SEEK_END)
        return struct.unpack("<I", handle.read(4))[0]


def decompressed_size(path: Path) -> int:
    """Bytes of a gzip file's decompressed content (all members).

    Raises:
        InvalidInput: the stream is corrupt or ends early, naming the file.
    """
    total, pending = 0, False  # pending: a member has started and not yet ended
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            try:
                while chunk:
                    pending = True
                    total += len(decompressor.decompress(chunk))
                    if not decompressor.eof:
                        break
                    pending, chunk = False, decompressor.unused_data  # the next gzip member, if any
                    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            except zlib.error as error:
                raise InvalidInput(f"{path} is corrupt (gzip: {error}); {RECOPY_HINT}.") from None
    if pending:
        raise InvalidInput(f"{path} is truncated (its gzip stream ends early, after {total} bytes); {RECOPY_HINT}.")
    return total


def check_complete(path: str | os.PathLike) -> None:
    """Raises InvalidInput if a NIfTI file holds less voxel data than its header describes (other formats: no-op)."""
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        return
    expected = expected_nifti_bytes(path)
    if expected is None:  # no readable header: a gzip stream cut inside it is still told as truncated
        if name.endswith(".gz"):
            decompressed_size(path)
        return
    if name.endswith(".nii"):
        actual = path.stat().st_size
    else:
        trailer = _gzip_trailer_size(path)
        if trailer == expected % (1 << 32):
            return
        actual = decompressed_size(path)
    if actual < expected:
        raise InvalidInput(f"{path} is truncated: its header describes {expected} bytes (header and voxel data) but "
                           f"it holds {actual}; {RECOPY_HINT}.")


def check_finite(array: np.ndarray, path: str | os.PathLike, what: str = "image") -> None:
    """Raises InvalidInput naming the file if a float array holds NaN or infinite values."""
    if not np.issubdtype(array.dtype, np.floating):
        return
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise InvalidInput(f"{path}: {bad} of {array.size} voxels of this {what} are NaN or infinite; radconf does not "
                           f"guess a value for them. Replace them in the file (e.g. with the background value) and "
                           f"run again.")
