"""A folder of images with one subfolder per class, read in place: ``ROOT/CLASS/*.png|jpg|jpeg``.

Classes are the subfolders of ``ROOT`` sorted by name (Python string order, as torchvision's
``ImageFolder``); class k's images get label k. Images are the ``.png``, ``.jpg`` and ``.jpeg``
files (any case) directly inside each class folder, in name order; other files, and names that
start with a dot, are ignored. Where ``ROOT`` holds ``train/`` and ``test/`` with class folders in
them, they are the training and the official test split, and must have the same class names
(other entries of ``ROOT``, such as a ``val/``, are then ignored).

Pixels: grey images (Pillow modes 1, L, LA, I, I;16, and palette images whose colours are all
grey) have one channel, all others three (CMYK and YCbCr are converted to RGB); transparency is
composited onto black (pixel * alpha), 16-bit grey is scaled by 1/65535, everything else by 1/255.
``channels=0`` keeps one channel when every image is grey, else three (grey images are then
repeated to three); ``channels=1`` turns colour into luma (0.299 R + 0.587 G + 0.114 B, as Pillow's
``convert("L")``), ``channels=3`` repeats grey. An image whose size is not ``size`` is resized to
it with Pillow's bilinear filter (``Image.BILINEAR``, which widens its support when shrinking, so
it averages like an area filter then), on float pixels, stretching when the aspect differs.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from infaug.data.folder import load_image_folder
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = Path(tmp.name)
    >>> for name, colour in [("cat", (255, 0, 0)), ("dog", (0, 0, 255))]:
    ...     (root / name).mkdir()
    ...     Image.new("RGB", (40, 30), colour).save(root / name / "1.png")
    >>> train, test = load_image_folder(root, size=(32, 32))
    >>> train.images.shape, train.labels.tolist(), train.classes, test
    (torch.Size([2, 3, 32, 32]), [0, 1], ('cat', 'dog'), None)
    >>> train.images[1, :, 0, 0].tolist()  # dog: blue
    [0.0, 0.0, 1.0]
    >>> tmp.cleanup()
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from infaug.data.mnist import Digits
from infaug.data.sources import CorruptFileError

__all__ = ["IMAGE_SUFFIXES", "is_split_folder", "load_image_folder", "read_image", "read_class_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_LUMA = (0.299, 0.587, 0.114)  # R, G, B weights of luma, as Pillow's convert("L") (also infaug.data.datasets)

Size = Union[int, Sequence[int]]


def _size(size: Size) -> Tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (height, width) of positive integers, got {size!r}")
    return size


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_dirs(root: Path) -> List[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)


def _image_files(folder: Path) -> List[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.name,
    )


def read_image(path: Union[str, Path]) -> np.ndarray:
    """One image file as float32 (H, W, 1) for grey or (H, W, 3) for colour, in [0, 1].

    Raises :class:`~infaug.data.sources.CorruptFileError` (a ``ValueError``) naming the file when
    Pillow cannot read it (not an image, truncated, corrupt).
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return _pixels(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise CorruptFileError(f"{path}: not a readable image ({type(error).__name__}: {error})") from None


def _pixels(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA")
        rgba = np.asarray(image, dtype=np.float32) / 255.0
        if np.array_equal(rgba[..., 0], rgba[..., 1]) and np.array_equal(rgba[..., 0], rgba[..., 2]):
            return rgba[..., :1] * rgba[..., 3:]
        return rgba[..., :3] * rgba[..., 3:]
    if mode == "1":
        image, mode = image.convert("L"), "L"
    if mode.startswith("I;16") or mode == "I":
        return np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0.0, 1.0)[..., None]
    if mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32) / 255.0, 0.0, 1.0)[..., None]
    if mode == "L":
        return (np.asarray(image, dtype=np.float32) / 255.0)[..., None]
    if mode == "LA":
        la = np.asarray(image, dtype=np.float32) / 255.0
        return la[..., :1] * la[..., 1:]
    if mode == "RGBA":
        rgba = np.asarray(image, dtype=np.float32) / 255.0
        return rgba[..., :3] * rgba[..., 3:]
    if mode != "RGB":  # CMYK, YCbCr, RGBX, ...
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.float32) / 255.0


def _resize(pixels: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """(H, W, C) float pixels resized to ``size`` = (height, width) with Pillow's bilinear filter."""
    if pixels.shape[:2] == size:
        return pixels
    height, width = size
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., c], dtype=np.float32)).resize((width, height), Image.Resampling.BILINEAR))
        for c in range(pixels.shape[2])
    ]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0)


def _channels(channels: int) -> int:
    if channels not in (0, 1, 3):
        raise ValueError(f"channels must be 0 (automatic), 1 or 3, got {channels!r}")
    return channels


def _read_tree(root: Path, size: Tuple[int, int]) -> Tuple[Tuple[str, ...], List[np.ndarray], List[int]]:
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist" if not root.exists() else f"{root} is not a folder")
    dirs = _class_dirs(root)
    if not dirs:
        loose = len(_image_files(root))
        raise ValueError(
            f"{root} holds no class folders: put the images in one subfolder per class (ROOT/CLASS/*.png|jpg|jpeg)"
            + (f"; found {loose} images directly in {root}" if loose else "")
        )
    if len(dirs) < 2:
        raise ValueError(f"{root} holds one class folder ({dirs[0].name}); a classification dataset needs at least 2 classes")
    pixels, labels = [], []
    for label, folder in enumerate(dirs):
        files = _image_files(folder)
        if not files:
            hint = ""
            if _class_dirs(folder):
                hint = " (it holds subfolders; infaug reads images directly inside each class folder, and uses ROOT/train and ROOT/test as splits)"
            raise ValueError(f"class folder {folder} holds no .png, .jpg or .jpeg images{hint}")
        for path in files:
            pixels.append(_resize(read_image(path), size))
            labels.append(label)
    return tuple(p.name for p in dirs), pixels, labels


def _stack(pixels: List[np.ndarray], labels: List[int], classes: Tuple[str, ...], channels: int) -> Digits:
    images = np.empty((len(pixels), channels) + pixels[0].shape[:2], dtype=np.float32)
    luma = np.array(_LUMA, dtype=np.float32)
    for i, p in enumerate(pixels):
        if p.shape[2] == channels:
            images[i] = p.transpose(2, 0, 1)
        elif channels == 3:  # grey -> colour
            images[i] = np.broadcast_to(p.transpose(2, 0, 1), images.shape[1:])
        else:  # colour -> luma
            images[i, 0] = np.clip(p @ luma, 0.0, 1.0)
    return Digits(torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64), classes)


def is_split_folder(root: Union[str, Path]) -> bool:
    """True when ``root`` holds the folders ``train/`` and ``test/`` and either holds a subfolder
    (so a ``test/`` with no class folders is an error, not a class named "test")."""
    root = Path(root)
    splits = [root / "train", root / "test"]
    return all(s.is_dir() for s in splits) and any(_class_dirs(s) for s in splits)


def read_class_folder(root: Union[str, Path], *, size: Size = (28, 28), channels: int = 0) -> Digits:
    """The images of ``root/CLASS/*`` (no split subfolders looked for) as :class:`Digits` with ``classes``."""
    size, channels = _size(size), _channels(channels)
    classes, pixels, labels = _read_tree(Path(root), size)
    if channels == 0:
        channels = 1 if all(p.shape[2] == 1 for p in pixels) else 3
    return _stack(pixels, labels, classes, channels)


def load_image_folder(
    root: Union[str, Path], *, size: Size = (28, 28), channels: int = 0
) -> Tuple[Digits, Optional[Digits]]:
    """(training images, test images or None) from the image folder ``root`` (see the module).

    ``size``: (height, width) every image is resized to (an int for a square). ``channels``: 0
    chooses 1 when every image (of both splits) is grey, else 3; 1 or 3 forces it. With
    ``root/train`` and ``root/test`` both split folders, both are read and must have the same class
    names; otherwise ``root`` itself holds the class folders and the test split is None. Both
    :class:`Digits` carry the class names in ``classes`` (label k is ``classes[k]``).
    """
    size, channels = _size(size), _channels(channels)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist" if not root.exists() else f"{root} is not a folder")
    if not is_split_folder(root):
        return read_class_folder(root, size=size, channels=channels), None
    train = _read_tree(root / "train", size)
    test = _read_tree(root / "test", size)
    if train[0] != test[0]:
        only_train = sorted(set(train[0]) - set(test[0]))
        only_test = sorted(set(test[0]) - set(train[0]))
        raise ValueError(
            f"{root}: train/ and test/ must hold the same class folders; "
            f"only in train/: {', '.join(only_train) or '-'}; only in test/: {', '.join(only_test) or '-'}"
        )
    if channels == 0:
        channels = 1 if all(p.shape[2] == 1 for p in train[1] + test[1]) else 3
    return _stack(train[1], train[2], train[0], channels), _stack(test[1], test[2], test[0], channels)
