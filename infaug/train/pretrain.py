"""G for one seed of a task: :func:`pretrain`, what ``infaug run`` and ``learn_augmenter`` share."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from infaug import distributed
from infaug.config import Config
from infaug.models import Generator
from infaug.train.checkpoint import Checkpoints
from infaug.train.gan import pretrain_from_config
from infaug.util.seeds import derive
from infaug.util.seeds import rng as seeded
from infaug.train.task import Task

__all__ = ["pretrain"]


def pretrain(task: Task, config: Config, seed: int, checkpoints: Optional[Checkpoints] = None) -> tuple[nn.Module, float, dict]:
    """(G, seconds, history of the losses): G initialised from the seed and pre-trained by WGAN-GP
    on every training image (labelled and unlabelled), continued from (and saved to) its checkpoint
    ``seed<S>-G`` when ``checkpoints`` are given. G is returned in eval mode, without gradients."""
    phase = (checkpoints or Checkpoints(None)).phase(f"seed{seed}-G")
    torch.manual_seed(derive(seed, "G"))
    generator = task.make_generator()
    stream = distributed.rank_rng(seed, "G pre-training", seeded(seed, "G pre-training"))
    history = {}
    saved = phase.load()
    if saved is not None and saved.get("finished"):
        generator.load_state_dict(saved["generator"])
        history = saved["history"]
    elif isinstance(generator, Generator) and config.generator.steps > 0:
        images = torch.cat([task.train[0], task.unlabelled])  # labels unused: all training images
        result = pretrain_from_config(generator, images, config.generator, ranges=config.heuristic,
                                      rng=stream, checkpoint=phase, seed=seed)
        history = vars(result)
    phase.save(lambda: {"finished": True, "generator": generator.state_dict(), "history": history}, note="finished")
    generator.eval().requires_grad_(False)
    return generator, phase.elapsed(), history
