"""``infaug run``: every method on the same splits and seeds, and the outputs of SPEC 3.

For each seed: the splits, then G pre-trained once (``random_g`` and ``proposed`` share it; its
time is counted in both), then each method by :func:`infaug.train.loop.run_method`. After each
method ``metrics.json`` is rewritten (atomically), so finished results survive an interruption.
At the end: the pictures of the first seed, ``report.html`` and a summary table.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional

import torch

from infaug import report
from infaug.atomic import atomic_write
from infaug.augmenter import Augmenter
from infaug.config import Config
from infaug.models import Generator
from infaug.train.gan import pretrain_from_config
from infaug.train.loop import MethodResult, run_method
from infaug.train.seeds import derive
from infaug.train.seeds import rng as seeded
from infaug.train.task import Task, build_task, load_pool

__all__ = ["resolve_device", "run"]

log = logging.getLogger("infaug")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but torch {torch.__version__} sees no CUDA device")
    return device


def _write_json(path: Path, value: dict) -> None:
    text = json.dumps(value, indent=1)
    atomic_write(path, lambda temporary: temporary.write_text(text))


def _setup_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "run.log", mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def pretrain(task: Task, config: Config, seed: int) -> tuple[torch.nn.Module, float, dict]:
    """G for this seed: (G, seconds, history of the losses)."""
    start = time.perf_counter()
    torch.manual_seed(derive(seed, "G"))
    generator = task.make_generator()
    history = {}
    if isinstance(generator, Generator) and config.generator.steps > 0:
        images = torch.cat([task.train[0], task.unlabelled])  # labels unused: all training images
        result = pretrain_from_config(generator, images, config.generator, ranges=config.heuristic, rng=seeded(seed, "G pre-training"))
        history = vars(result)
    generator.eval().requires_grad_(False)
    return generator, time.perf_counter() - start, history


def run(config: Config, out_dir: str | Path, *, echo=print) -> dict:
    """Runs ``config`` and writes its outputs to ``out_dir``; returns the metrics.

    toy2d with ``data.toy_shift > 0`` runs twice, as is and with the validation points moved down,
    into ``as-is/`` and ``shifted/``, and draws the paper's Figure 3 from both."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handler = _setup_log(out)
    try:
        if config.data.dataset == "toy2d" and config.data.toy_shift > 0:
            return _run_toy_variants(config, out, echo)
        metrics, task, results, gan = _run(config, out, echo)
        from infaug.pictures import draw_pictures

        pictures = draw_pictures(out, config, task, results, gan, metrics)
        if task is not None and task.kind == "points" and {"none", "proposed"} <= set(results):
            from infaug.pictures import toy2d_row

            report.save_toy2d_figure([toy2d_row("toy2d", task, results)], out / "figure3.png")
            pictures.append(("The paper's Figure 3: F before and after training on E's translations", "figure3.png"))
        _finish(out, config, metrics, pictures, echo)
        return metrics
    finally:
        log.removeHandler(handler)
        handler.close()


def _run_toy_variants(config: Config, out: Path, echo) -> dict:
    from infaug.pictures import toy2d_row

    rows, variants = [], {}
    for name, shift in (("as-is", 0.0), ("shifted", config.data.toy_shift)):
        _say(echo, f"toy2d, validation points {name}" + (f" (moved down by {shift})" if shift else ""))
        variant = config.replace({"data.toy_shift": shift})
        metrics, task, results, _ = _run(variant, out / name, echo)
        variants[name] = metrics
        if {"none", "proposed"} <= set(results):
            title = "validation as training" if not shift else f"validation moved down by {shift}"
            rows.append(toy2d_row(title, task, results))
        report.write_report(out / name, metrics, [], title=f"infaug run: toy2d, {name}")
    metrics = dict(variants["as-is"], variants=variants, config=config.to_dict())
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


def _run(config: Config, out: Path, echo) -> tuple:
    """(metrics, the first seed's task, its results by method, G's pre-training history)."""
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.run.device)
    pool, official_test = load_pool(config)
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
    }
    _write_json(out / "config.json", config.to_dict())
    _say(echo, f"infaug run: preset {config.preset or '(custom)'}, methods {', '.join(methods)}, seeds {list(config.run.seeds)}, on {device}")
    first: dict[str, MethodResult] = {}
    first_task: Optional[Task] = None
    first_history: dict = {}
    for seed in config.run.seeds:
        task = build_task(config, seed, device, pool, official_test)
        metrics["splits"][str(seed)] = task.splits.record()
        generator, g_seconds, g_history = None, 0.0, {}
        if {"random_g", "proposed"} & set(methods):
            generator, g_seconds, g_history = pretrain(task, config, seed)
            _say(echo, f"seed {seed}: G pre-trained in {g_seconds:.1f} s")
            if isinstance(generator, Generator):
                Augmenter(generator).save(out / f"random_g-seed{seed}.pt")
        for method in methods:
            result = run_method(method, task, config, seed, generator=generator)
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
            if result.encoder is not None and isinstance(generator, Generator):
                Augmenter(generator, result.encoder).save(out / f"augmenter-seed{seed}.pt")
            if result.encoder is not None and task.kind == "points":
                with torch.no_grad():
                    shift = generator.scale * result.encoder.mean(task.train[0]).mean(0)
                metrics.setdefault("mean_translation", []).append([float(v) for v in shift])
            _say(echo, f"seed {seed} {method:>14}: test accuracy {100 * result.test_accuracy:.2f}%  test loss "
                 f"{result.test_loss:.4f}  val loss {result.val_loss:.4f}  ({seconds:.1f} s)")
            _write_json(out / "metrics.json", metrics)
            if seed == config.run.seeds[0]:
                first[method] = result
        if first_task is None:
            first_task, first_history = task, g_history
    if "heuristic" in methods and "proposed" in methods:
        ratio = sum(metrics["methods"]["proposed"]["seconds"]) / max(sum(metrics["methods"]["heuristic"]["seconds"]), 1e-9)
        metrics["proposed_over_heuristic_seconds"] = ratio
        _write_json(out / "metrics.json", metrics)
    return metrics, first_task, first, first_history
