"""The IDX datasets infaug knows by name: where their files sit, their official mirrors, and what
their files hold.

Files sit in torchvision's layout, ``ROOT/FOLDER/raw/<file>``, so a folder another tool downloaded
is used as it is. ``infaug download NAME`` fetches them (:mod:`infaug.data.download`). A file is
recognised by its content, not by its container: the IDX header's dimensions and the SHA-256 of
the IDX bytes once decompressed, so any correct copy is accepted, whether it is the mirror's
``.gz``, the same data compressed again by another tool (Debian's ``dataset-fashion-mnist``
package, ``gzip -n -9``) or not compressed at all, and a truncated or altered one is refused with
the file named and what differs.

The checksums are of the official files' decompressed bytes: MNIST's from the originals (whose
``.gz`` MD5s are the published ones); Fashion-MNIST's from Debian's package, whose ``.gz`` files
hold the same deflate streams as the official mirror's (restoring the gzip header's file name and
time, 2017-08-31, gives each file's published MD5).

Example:
    >>> from infaug.data.sources import SOURCES
    >>> SOURCES["fashion-mnist"].folder, len(SOURCES["mnist"].mirrors) >= 2
    ('FashionMNIST', True)
    >>> SOURCES["mnist"].file("t10k-labels-idx1-ubyte.gz").size  # IDX bytes: an 8-byte header and 10000 labels
    10008
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from infaug.data.idx import CorruptFileError, header_shape, read_payload

__all__ = ["IDX_FILES", "SOURCES", "CorruptFileError", "DataFile", "Source", "check_content", "check_file", "source_for_folder"]

# The four files of an MNIST-like IDX dataset, by split: (images, labels).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class DataFile:
    """One file of a known dataset, by what it holds: ``name`` as the mirrors serve it (``.gz``),
    the ``shape`` in its IDX header (unsigned bytes), the SHA-256 of its decompressed IDX bytes."""

    name: str
    shape: tuple
    sha256: str

    @property
    def size(self) -> int:
        """The IDX bytes: a header of 4 + 4 per dimension, then one byte per element."""
        count = 1
        for n in self.shape:
            count *= n
        return 4 + 4 * len(self.shape) + count


@dataclass(frozen=True)
class Source:
    """A named dataset: ``folder`` under the data root, the base URLs tried in turn, its files."""

    name: str
    folder: str
    mirrors: tuple
    files: tuple

    def file(self, name: str) -> DataFile:
        """The file called ``name``, compressed (``.gz``) or not."""
        for f in self.files:
            if name in (f.name, f.name[: -len(".gz")]):
                return f
        raise KeyError(f"{self.name} has no file {name!r}; its files: {', '.join(f.name for f in self.files)}")


SOURCES = {
    "mnist": Source(
        "mnist",
        "MNIST",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        (
            DataFile("train-images-idx3-ubyte.gz", (60000, 28, 28), "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            DataFile("train-labels-idx1-ubyte.gz", (60000,), "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            DataFile("t10k-images-idx3-ubyte.gz", (10000, 28, 28), "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            DataFile("t10k-labels-idx1-ubyte.gz", (10000,), "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        ),
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        "FashionMNIST",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        (
            DataFile("train-images-idx3-ubyte.gz", (60000, 28, 28), "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            DataFile("train-labels-idx1-ubyte.gz", (60000,), "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            DataFile("t10k-images-idx3-ubyte.gz", (10000, 28, 28), "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            DataFile("t10k-labels-idx1-ubyte.gz", (10000,), "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        ),
    ),
}


def source_for_folder(folder: str) -> Optional[Source]:
    """The known source stored under ``folder`` ("MNIST", "FashionMNIST"), or None."""
    for source in SOURCES.values():
        if source.folder == folder:
            return source
    return None


def check_content(path: str | Path, data: bytes, expected: DataFile, compressed: bool = False) -> None:
    """Raises :class:`CorruptFileError` naming ``path`` when its IDX bytes ``data`` are not
    ``expected``'s: a header of other dimensions, fewer or more bytes, or other bytes (SHA-256)."""
    what = "decompressed bytes" if compressed else "bytes"
    _, shape, _ = header_shape(path, data)
    if shape != tuple(expected.shape):
        raise CorruptFileError(f"{path}: its IDX header gives the shape {shape}, expected {tuple(expected.shape)} for {expected.name}")
    if len(data) != expected.size:
        cut = " (truncated)" if len(data) < expected.size else " (trailing data)"
        raise CorruptFileError(f"{path}: expected {expected.size} {what}, found {len(data)}{cut}; delete it and fetch it again (infaug download)")
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.sha256:
        raise CorruptFileError(
            f"{path}: its data differ from the official {expected.name}: SHA-256 of its {len(data)} {what} is "
            f"{actual}, expected {expected.sha256}; delete it and fetch it again (infaug download)"
        )


def check_file(path: str | Path, expected: DataFile) -> None:
    """Reads ``path`` (gzip-compressed or not) and checks its IDX bytes with :func:`check_content`."""
    data, compressed = read_payload(path)
    check_content(path, data, expected, compressed)
