"""The IDX datasets infaug knows by name: where their files sit, their official mirrors and checksums.

Files sit in torchvision's layout, ``ROOT/FOLDER/raw/<file>``, so a folder another tool downloaded
is used as it is. ``infaug download NAME`` fetches them (:mod:`infaug.data.download`); loading
checks each file against its size and MD5 here before it is parsed, so a truncated or corrupt
file stops with the file named instead of training on garbage.

Example:
    >>> from infaug.data.sources import SOURCES
    >>> SOURCES["fashion-mnist"].folder, len(SOURCES["mnist"].mirrors) >= 2
    ('FashionMNIST', True)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["IDX_FILES", "SOURCES", "CorruptFileError", "DataFile", "Source", "check_file", "md5sum", "source_for_folder"]

# The four files of an MNIST-like IDX dataset, by split: (images, labels).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class DataFile:
    name: str
    md5: str
    size: Optional[int] = None  # bytes, where known


@dataclass(frozen=True)
class Source:
    """A named dataset: ``folder`` under the data root, the base URLs tried in turn, its files."""

    name: str
    folder: str
    mirrors: tuple
    files: tuple

    def file(self, name: str) -> DataFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no file {name!r}; its files: {', '.join(f.name for f in self.files)}")


SOURCES = {
    "mnist": Source(
        "mnist",
        "MNIST",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        (
            DataFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
            DataFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28881),
            DataFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1648877),
            DataFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4542),
        ),
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        "FashionMNIST",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        (
            DataFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            DataFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            DataFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            DataFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
    ),
}


def source_for_folder(folder: str) -> Optional[Source]:
    """The known source stored under ``folder`` ("MNIST", "FashionMNIST"), or None."""
    for source in SOURCES.values():
        if source.folder == folder:
            return source
    return None


class CorruptFileError(ValueError):
    """A data file whose size or checksum is not the expected one; the message names the file."""


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: str | Path, expected: DataFile) -> None:
    """Raises :class:`CorruptFileError` naming ``path`` when its size or MD5 is not ``expected``'s."""
    path = Path(path)
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        raise CorruptFileError(
            f"{path}: expected {expected.size} bytes, found {size} (truncated or corrupt); "
            f"delete it and fetch it again (infaug download)"
        )
    actual = md5sum(path)
    if actual != expected.md5:
        raise CorruptFileError(
            f"{path}: MD5 {actual} does not match the expected {expected.md5} ({size} bytes); "
            f"delete it and fetch it again (infaug download)"
        )
