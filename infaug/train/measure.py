"""What the loop measures without training anything: I_aug on the held-out labelled samples (those E
never trains on) and, at the last round, the diagnostics of E's augmentations against G's prior's
and the heuristic's. Every draw comes from the loop's ``measure`` stream, apart from training."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from infaug.config import Config
from infaug.diagnose import last_layer_check
from infaug.train.classifier import Augment
from infaug.train.encoder import i_aug
from infaug.train.methods import make_augmentation
from infaug.util.seeds import rng as seeded
from infaug.train.state import LoopState
from infaug.train.task import Task

__all__ = ["DRAWS", "diagnose", "mean_i_aug", "summary"]

DRAWS = 8  # augmentations per held-out sample when I_aug is measured: its mean over one draw is noisy


@torch.no_grad()
def _i_aug_draws(model, engine, x: Tensor, y: Tensor, augment: Augment, rng: torch.Generator) -> Tensor:
    """I_aug (N,) of each sample averaged over DRAWS augmentations of it."""
    return torch.stack([i_aug(model, engine, x, augment(x, rng), y) for _ in range(DRAWS)]).mean(0)


def mean_i_aug(model, engine, task: Task, augment: Augment, rng: torch.Generator) -> float:
    """The mean I_aug of ``augment`` on the held-out labelled samples (those E never trains on)."""
    x, y = task.train[0][task.holdout_rows], task.train[1][task.holdout_rows]
    return float(_i_aug_draws(model, engine, x, y, augment, rng).mean())


@torch.no_grad()
def diagnose(state: LoopState, engine, task: Task, config: Config, generator, seed: int) -> None:
    """At the last round's F and s_val: I_aug per held-out sample of E's, G's prior's and the
    heuristic's augmentations (the prediction ``proposed`` is judged on, on samples E never saw)
    and, with loop.last_layer_check, their predicted against actual effect on F's retrained last
    layer (``infaug.diagnose``; its time is not the method's)."""
    model, x, y = state.trainer.model, task.train[0][task.holdout_rows], task.train[1][task.holdout_rows]
    augments = {"proposed": make_augmentation("proposed", task, config, generator, state.encoder),
                "random_g": make_augmentation("random_g", task, config, generator, None), "heuristic": task.heuristic}
    state.holdout = {name: _i_aug_draws(model, engine, x, y, augment, state.measure).cpu() for name, augment in augments.items()}
    if task.kind == "images" and config.loop.last_layer_check:
        started, rng = time.perf_counter(), seeded(seed, "last layer check")
        augmented = {name: augment(task.train[0], rng) for name, augment in augments.items()}
        state.check = last_layer_check(model, task.train, task.validation, augmented, damping=config.classifier.damping, seed=seed)
        state.check_seconds += time.perf_counter() - started


@torch.no_grad()
def summary(task: Task, generator, encoder) -> dict:
    """What a finished method reports of itself beyond its losses: for the toy2d points, the mean
    translation (x, y) E learned over the training points."""
    if encoder is None or task.kind != "points":
        return {}
    return {"mean_translation": [float(v) for v in generator.scale * encoder.mean(task.train[0]).mean(0)]}
