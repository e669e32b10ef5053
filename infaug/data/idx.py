"""IDX files (MNIST's format), gzip-compressed or not: their bytes and their header, checked.

:func:`read_payload` gives a file's IDX bytes, decompressing it when its first bytes say gzip (by
whatever tool and options it was compressed), and stops with the file named when the gzip stream
is truncated or corrupt. :func:`parse_idx` reads the header (magic number, element type,
dimensions) and checks that the bytes are exactly as many as it promises.

Example:
    >>> import gzip, numpy as np
    >>> from infaug.data.idx import parse_idx
    >>> raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])  # three uint8 labels
    >>> parse_idx("labels", raw).tolist()
    [7, 2, 1]
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from infaug.util.files import CorruptFileError

__all__ = ["CorruptFileError", "IDX_DTYPES", "header_shape", "parse_idx", "read_payload"]

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_payload(path: str | Path) -> tuple[bytes, bool]:
    """The IDX bytes of ``path`` and whether they were gzip-compressed (told by the first bytes)."""
    path = Path(path)
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
    if not compressed:
        return path.read_bytes(), False
    try:
        with gzip.open(path, "rb") as f:
            return f.read(), True
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise CorruptFileError(
            f"{path}: the gzip data is truncated or corrupt ({type(error).__name__}: {error}); "
            f"delete it and fetch it again"
        ) from None


def header_shape(path: str | Path, data: bytes) -> tuple[np.dtype, tuple, int]:
    """The element type, the dimensions and the header's length in bytes from IDX bytes ``data``;
    ``ValueError`` naming ``path`` when they are no IDX data at all."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise CorruptFileError(f"{path} is not an IDX file (magic bytes {data[:4]!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptFileError(f"{path}: expected at least {header} bytes for a header of {ndim} dimensions, found {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.dtype(IDX_DTYPES[data[2]]), shape, header


def parse_idx(path: str | Path, data: bytes, compressed: bool = False) -> np.ndarray:
    """The array in IDX bytes ``data`` (read from ``path``, which only names it in errors)."""
    dtype, shape, header = header_shape(path, data)
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "decompressed bytes" if compressed else "bytes"
        raise CorruptFileError(
            f"{path}: expected {expected} {what} from the header (shape {shape}, {dtype.name}), found {len(data)}"
            + (" (truncated)" if len(data) < expected else " (trailing data)")
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
