"""Datasets: IDX datasets (MNIST, Fashion-MNIST, ...) and folders of images read in place, a small
embedded sample of MNIST for the quick start, and :func:`load_dataset`, the one entry point."""

from infaug.data.datasets import DATASETS, fit_images, load_dataset
from infaug.data.folder import load_image_folder
from infaug.data.mnist import Digits, embedded_digits, load_idx_dataset, load_mnist, read_idx
from infaug.data.sources import CorruptFileError

__all__ = [
    "DATASETS",
    "CorruptFileError",
    "Digits",
    "embedded_digits",
    "fit_images",
    "load_dataset",
    "load_idx_dataset",
    "load_image_folder",
    "load_mnist",
    "read_idx",
]
