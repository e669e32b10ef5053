"""Datasets: real MNIST read in place, and a small embedded sample of it for the quick start."""

from infaug.data.mnist import Digits, embedded_digits, load_mnist, read_idx

__all__ = ["Digits", "embedded_digits", "load_mnist", "read_idx"]
