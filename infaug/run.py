"""``infaug run``: every method on the same splits and seeds, and the outputs each run writes.

For each seed: the splits, then G pre-trained once (``random_g`` and ``proposed`` share it; its
time is counted in both), then each method by :func:`infaug.train.loop.run_method`. After each
method ``metrics.json`` is rewritten (atomically). At the end: the pictures of the first seed,
``report.html`` and a summary table.

Nothing is lost when a run is killed: every phase checkpoints into ``OUT/checkpoints/`` (see
:mod:`infaug.train.checkpoint`), and ``run(config, out, resume=True)`` (``infaug run --resume``)
continues from there to the same result. The output directory is checked before any work (it
must be writable and have room), and a non-finite loss stops the run naming the phase, the step
and the last good checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Optional

import torch

from infaug import distributed, report
from infaug.util.atomic import atomic_write
from infaug.util.files import read_json, with_digest
from infaug.augmenter import Augmenter
from infaug.config import ABSENT_MEANT, Config, differing_keys, flat
from infaug.models import Generator
from infaug.train.checkpoint import Checkpoints, NonFiniteError
from infaug.train.loop import run_method
from infaug.train.pretrain import pretrain
from infaug.train.state import MethodResult
from infaug.train.task import Task, build_task, check_task, load_pool

__all__ = ["RunError", "check_output_dir", "resolve_device", "run"]

MIN_FREE_BYTES = 64 << 20  # checkpoints, pictures and the report of a run fit in this


class RunError(RuntimeError):
    """A run that cannot start or go on, with the reason and what to do."""

log = logging.getLogger("infaug")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but torch {torch.__version__} sees no CUDA device")
    return device


def _write_json(path: Path, value: dict) -> None:
    """``value`` as JSON with its checksum (:func:`~infaug.util.files.with_digest`), atomically."""
    text = json.dumps(with_digest(value), indent=1)
    atomic_write(path, lambda temporary: temporary.write_text(text))


def _write_config(out: Path, config: Config) -> None:
    """The resolved configuration beside the results: config.json, and config.toml for --config."""
    _write_json(out / "config.json", config.to_dict())
    text = config.to_toml()
    atomic_write(out / "config.toml", lambda temporary: temporary.write_text(text))


def _setup_log(out: Path, append: bool = False) -> logging.Handler:
    handler = logging.FileHandler(out / "run.log", mode="a" if append else "w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def check_output_dir(out: Path, need: int = MIN_FREE_BYTES) -> None:
    """Fails now, not after an hour, when ``out`` cannot be created, is not writable or has less
    than ``need`` bytes free: a probe file is written, synced and removed."""
    probe = out / ".infaug-write-probe"
    try:
        out.mkdir(parents=True, exist_ok=True)
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * (1 << 20))
                f.flush()
                os.fsync(f.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as error:
        raise RunError(f"output directory {out} is not usable: {error.strerror or error} ({type(error).__name__}); "
                       "choose another with --out") from None
    free = shutil.disk_usage(out).free
    if free < need:
        raise RunError(f"output directory {out}: only {free / 2**20:.1f} MiB free on its filesystem; a run needs at "
                       f"least {need / 2**20:.0f} MiB (checkpoints, pictures, report); free some space or choose another --out")


def run(config: Config, out_dir: str | Path, *, echo=print, resume: bool = False) -> dict:
    """Runs ``config`` and writes its outputs to ``out_dir``; returns the metrics.

    ``resume``: continue the run in ``out_dir`` from its checkpoints (its ``config.json`` must
    match ``config``, but for ``run.device`` and ``run.checkpoint_every``). Without it, a folder
    holding an unfinished run is refused rather than overwritten.

    toy2d with ``data.toy_shift > 0`` runs twice, as is and with the validation points moved down,
    into ``as-is/`` and ``shifted/``, and draws the paper's Figure 3 from both.

    Under ``torchrun`` (``infaug.distributed``) every process runs this with the same arguments:
    the process group is joined here, all ranks train together, and rank 0 alone checks and writes
    the output folder (metrics, pictures, checkpoints, log); the others print nothing."""
    out = Path(out_dir)
    if distributed.launched_by_torchrun():
        distributed.setup(resolve_device(config.run.device))
    main = distributed.is_main()
    echo = echo if main else None
    if main:
        check_output_dir(out)
    # Every file the run reads is checked before the folder is touched: a truncated or altered data
    # file or checkpoint stops the run with the file named, and the previous run's outputs stay.
    data = load_pool(config)
    if main:
        if resume:
            for directory in _run_dirs(out):
                Checkpoints(directory / "checkpoints").verify()
        _check_resume(config, out, resume)
    distributed.barrier()  # the others start once rank 0 has checked (and, without --resume, cleared) the folder
    handler = _setup_log(out, append=resume) if main else logging.NullHandler()
    if main:
        _write_config(out, config)
    try:
        if config.data.dataset == "toy2d" and config.data.toy_shift > 0:
            return _run_toy_variants(config, out, echo, data)
        metrics, task, results, gan = _run(config, out, echo, data)
        if not main:
            return metrics
        from infaug.pictures import draw_pictures

        pictures = draw_pictures(out, task, results, gan)
        if task is not None and task.kind == "points" and {"none", "proposed"} <= set(results):
            from infaug.pictures import toy2d_row

            report.save_toy2d_figure([toy2d_row("toy2d", task, results)], out / "figure3.png")
            pictures.append(("The paper's Figure 3: F before and after training on E's translations", "figure3.png"))
        _finish(out, config, metrics, pictures, echo)
        return metrics
    except NonFiniteError as error:
        last = f"{error.last_good[0]} ({error.last_good[1]})" if getattr(error, "last_good", None) else "none yet"
        message = (f"{error}. No checkpoint holds a non-finite value. The last good checkpoint: {last}; "
                   f"after changing what made it diverge (a smaller learning rate, say), continue with "
                   f"`infaug run --resume --out {out}`")
        log.error(message)
        raise RunError(message) from error
    finally:
        log.removeHandler(handler)
        handler.close()


_MAY_CHANGE_ON_RESUME = ("run.device", "run.checkpoint_every")


def _run_dirs(out: Path) -> list[Path]:
    """The folders of ``out`` that hold a run's config.json (two for toy2d's variants)."""
    return [d for d in (out, out / "as-is", out / "shifted") if (d / "config.json").exists()]


def _check_resume(config: Config, out: Path, resume: bool) -> None:
    unfinished = [d for d in _run_dirs(out) if Checkpoints(d / "checkpoints").has_any() and not (d / "checkpoints" / "FINISHED").exists()]
    if not resume:
        if unfinished:
            raise RunError(f"{out} holds an unfinished run (checkpoints in {unfinished[0] / 'checkpoints'}): continue it with "
                           f"`infaug run --resume --out {out}`, or choose another --out, or delete that folder to start over")
        for d in _run_dirs(out):
            shutil.rmtree(d / "checkpoints", ignore_errors=True)  # a finished run's: replaced by this one
        return
    if not (out / "config.json").exists():
        raise RunError(f"--resume: {out / 'config.json'} not found, so {out} holds no run to continue")
    ran = read_json(out / "config.json", "run's config.json")
    differ = sorted(differing_keys(ran, config.to_dict()) - set(_MAY_CHANGE_ON_RESUME))  # a key added since: its default
    if differ:
        saved, wanted, defaults = flat(ran), flat(config.to_dict()), flat(Config().to_dict())
        had = {k: repr(saved[k]) if k in saved else (f"no value (written before the key, when infaug ran as {ABSENT_MEANT[k]!r})"
                                                     if k in ABSENT_MEANT else f"no value (the default {defaults.get(k)!r})") for k in differ}
        details = "; ".join(f"{k}: run has {had[k]}, given {wanted.get(k)!r}" for k in differ[:5])
        raise RunError(f"--resume: the configuration differs from that of the run in {out} ({details}); "
                       "resume without changing those keys, or start a new run in another --out")


def _run_toy_variants(config: Config, out: Path, echo, data: tuple) -> dict:
    from infaug.pictures import toy2d_row

    rows, variants = [], {}
    for name, shift in (("as-is", 0.0), ("shifted", config.data.toy_shift)):
        _say(echo, f"toy2d, validation points {name}" + (f" (moved down by {shift})" if shift else ""))
        variant = config.replace({"data.toy_shift": shift})
        if distributed.is_main():
            _write_config(out / name, variant)  # run() wrote the whole run's into out
        metrics, task, results, _ = _run(variant, out / name, echo, data)
        variants[name] = metrics
        if {"none", "proposed"} <= set(results):
            title = "validation as training" if not shift else f"validation moved down by {shift}"
            rows.append(toy2d_row(title, task, results))
        if distributed.is_main():
            report.write_report(out / name, metrics, [], title=f"infaug run: toy2d, {name}")
    metrics = dict(variants["as-is"], variants=variants, config=config.to_dict())
    if not distributed.is_main():
        return metrics
    pictures = []
    if rows:
        report.save_toy2d_figure(rows, out / "figure3.png")
        pictures.append(("The paper's Figure 3: top, validation like training; bottom, validation moved down", "figure3.png"))
    _write_json(out / "metrics.json", metrics)
    _finish(out, config, metrics, pictures, echo, tables={k: v for k, v in variants.items()})
    return metrics


def _finish(out: Path, config: Config, metrics: dict, pictures: list, echo, tables: Optional[dict] = None) -> None:
    report.write_report(out, metrics, pictures, title=f"infaug run: {config.preset or 'custom configuration'}")
    for name, table in (tables or {"": metrics}).items():
        _say(echo, "\n" + (f"{name}:\n" if name else "") + report.summary_table(table))
        if table.get("influence"):
            _say(echo, "mean I_aug on held-out labelled samples (lower = predicted to help more): "
                 + ", ".join(f"{k} {v:+.4f}" for k, v in table["influence"].items()))
        if table.get("mean_translation"):
            _say(echo, "mean translation learned by E (x, y) per seed: " + "; ".join(f"({a:+.3f}, {b:+.3f})" for a, b in table["mean_translation"]))
    if "proposed_over_heuristic_seconds" in metrics:
        _say(echo, f"proposed took {metrics['proposed_over_heuristic_seconds']:.2f}x the wall time of heuristic")
    _say(echo, f"wrote {out / 'metrics.json'}, {out / 'report.html'}")


def _say(echo, message: str) -> None:
    log.info(message)
    if echo:
        echo(message)


def _run(config: Config, out: Path, echo, data: tuple) -> tuple:
    """(metrics, the first seed's task, its results by method, G's pre-training history), with
    ``data`` = :func:`~infaug.train.task.load_pool` (config)."""
    out.mkdir(parents=True, exist_ok=True)
    device = distributed.setup(resolve_device(config.run.device))  # cuda:LOCAL_RANK under torchrun
    pool, official_test = data
    checkpoints = Checkpoints(out / "checkpoints", every=config.run.checkpoint_every)
    if distributed.is_main():
        checkpoints.clean()
    try:
        result = _run_seeds(config, out, echo, device, pool, official_test, checkpoints)
    except NonFiniteError as error:
        error.last_good = checkpoints.newest()
        raise
    if not distributed.is_main():
        return result
    (out / "checkpoints").mkdir(exist_ok=True)
    (out / "checkpoints" / "FINISHED").write_text("every phase of this run finished; --resume only redraws its outputs\n")
    return result


def _run_seeds(config: Config, out: Path, echo, device, pool, official_test, checkpoints: Checkpoints) -> tuple:
    methods = list(config.run.methods)
    metrics: dict = {
        "methods": {m: {"test_accuracy": [], "test_loss": [], "val_loss": [], "val_accuracy": [], "seconds": []} for m in methods},
        "influence": {},
        "holdout_i_aug": {},
        "rounds": {},
        "config": config.to_dict(),
        "splits": {},
        "device": str(device),
        "torch": torch.__version__,
        "processes": distributed.world_size(),
    }
    main = distributed.is_main()
    write_json = _write_json if main else (lambda path, value: None)
    _say(echo, f"infaug run: preset {config.preset or '(custom)'}, methods {', '.join(methods)}, seeds {list(config.run.seeds)}, on {device}")
    first: dict[str, MethodResult] = {}
    first_task: Optional[Task] = None
    first_history: dict = {}
    for seed in config.run.seeds:
        task = build_task(config, seed, device, pool, official_test)
        check_task(task, config, methods)
        metrics["splits"][str(seed)] = task.splits.record()
        generator, g_seconds, g_history = None, 0.0, {}
        if {"random_g", "proposed"} & set(methods):
            generator, g_seconds, g_history = pretrain(task, config, seed, checkpoints)
            _say(echo, f"seed {seed}: G pre-trained in {g_seconds:.1f} s")
            if isinstance(generator, Generator) and main:
                Augmenter(generator, temperature=config.generator.temperature).save(out / f"random_g-seed{seed}.pt")
        for method in methods:
            result = run_method(method, task, config, seed, generator=generator, checkpoint=checkpoints.phase(f"seed{seed}-{method}"))
            seconds = result.seconds + (g_seconds if method in ("random_g", "proposed") else 0.0)
            entry = metrics["methods"][method]
            for key, value in (("test_accuracy", result.test_accuracy), ("test_loss", result.test_loss),
                               ("val_loss", result.val_loss), ("val_accuracy", result.val_accuracy), ("seconds", seconds)):
                entry[key].append(value)
            metrics["rounds"].setdefault(method, []).append(result.rounds)
            if result.holdout_i_aug:
                for name, values in result.holdout_i_aug.items():
                    metrics["holdout_i_aug"].setdefault(name, []).append(float(values.mean()))
                metrics["influence"] = {k: sum(v) / len(v) for k, v in metrics["holdout_i_aug"].items()}
            for name, rows in result.last_layer_check.items():
                metrics.setdefault("last_layer_check", {}).setdefault(name, []).append(rows)
            if result.encoder is not None and isinstance(generator, Generator) and main:
                Augmenter(generator, result.encoder).save(out / f"augmenter-seed{seed}.pt")
            for key, value in result.summary.items():  # what the method measured of itself (toy2d: E's mean translation)
                metrics.setdefault(key, []).append(value)
            _say(echo, f"seed {seed} {method:>14}: test accuracy {100 * result.test_accuracy:.2f}%  test loss "
                 f"{result.test_loss:.4f}  val loss {result.val_loss:.4f}  ({seconds:.1f} s)")
            write_json(out / "metrics.json", metrics)
            if seed == config.run.seeds[0]:
                first[method] = result
        if first_task is None:
            first_task, first_history = task, g_history
    if "heuristic" in methods and "proposed" in methods:
        ratio = sum(metrics["methods"]["proposed"]["seconds"]) / max(sum(metrics["methods"]["heuristic"]["seconds"]), 1e-9)
        metrics["proposed_over_heuristic_seconds"] = ratio
        write_json(out / "metrics.json", metrics)
    return metrics, first_task, first, first_history
