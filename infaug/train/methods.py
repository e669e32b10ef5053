"""The seven methods' augmentations, as callables (x, rng) -> x~: :func:`make_augmentation`."""

from __future__ import annotations

import dataclasses
from typing import Optional

from torch import nn

from infaug.augmenter import Augmenter
from infaug.config import METHODS, Config
from infaug.train.task import Task

__all__ = ["make_augmentation"]


def make_augmentation(method: str, task: Task, config: Config, generator: Optional[nn.Module], encoder: Optional[nn.Module]):
    """The augmentation callable (x, rng) -> x~ of ``method`` (None for ``none``)."""
    if method == "none":
        return None
    if method == "heuristic":
        return task.heuristic
    if method in ("random_g", "proposed"):
        if generator is None:
            raise ValueError(f"method {method!r} needs a pre-trained G")
        if task.kind == "points":
            source = (lambda x, rng: generator.sample_latent(len(x), generator=rng, device=x.device)) if encoder is None else encoder
            return lambda x, rng: generator(x, source(x, rng))
        augmenter = Augmenter(generator, encoder, temperature=config.generator.temperature if method == "random_g" else 1.0)
        return lambda x, rng: augmenter(x, generator=rng)
    if method == "elastic":
        if task.kind != "images":
            raise ValueError("method 'elastic' displaces image pixels; it does not apply to the toy2d points")
        from infaug.augmentations import ElasticAugmentation

        el = config.elastic
        ranges = dataclasses.replace(config.heuristic, strength=el.strength)
        return ElasticAugmentation(ranges, alpha=el.alpha * el.strength, sigma=el.sigma)
    if method in ("trivialaugment", "randaugment"):
        if task.kind != "images":
            raise ValueError(f"method {method!r} augments images; it does not apply to the toy2d points")
        from infaug.baselines import KorniaPolicy

        k = config.kornia
        options = {"n": k.randaugment_n, "m": k.randaugment_m} if method == "randaugment" else {"scale": k.trivialaugment_scale}
        policy = KorniaPolicy(method, channels=task.shape[0], **options)
        return lambda x, rng: policy(x, rng)
    raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
