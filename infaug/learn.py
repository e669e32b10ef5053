"""Learning an augmentation for your own classifier, from Python: :func:`learn_augmenter`.

It runs on your classifier, your data and (if you pass one) your optimiser exactly what ``infaug
run`` runs as ``proposed``, the method behind the reported tables: G pre-trained by WGAN-GP on the
training (and unlabelled) images; F trained on originals plus augmentations (with ``semi.ratio`` > 0
also on unlabelled images, FixMatch-style), its warm-up first, then rounds of (s_val at F over E's
target; E trained by influence; E's step judged by a round of F's training for each factor of
``encoder.shrink``; F goes on from the best). Your classifier must end with an
``nn.Linear`` whose output is its output (the influence engine differentiates that layer); it is
trained in place, with L2 ``classifier.damping`` on that layer.

Example:
    >>> import torch, infaug
    >>> from torch import nn
    >>> from infaug.config import Config
    >>> model = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    >>> x, y = torch.rand(64, 1, 28, 28), torch.arange(64) % 10
    >>> quick = Config().replace({"classifier.epochs": 4, "generator.steps": 2, "encoder.steps": 2, "loop.rounds": 1})
    >>> augmenter = infaug.learn_augmenter(model, (x[:48], y[:48]), (x[48:], y[48:]), config=quick)
    >>> augmenter(x[:4]).shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

from typing import Iterable, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from infaug.augmenter import Augmenter
from infaug.config import Config
from infaug.engine import last_layer_features, last_linear
from infaug.train.loop import run_method
from infaug.train.pretrain import pretrain
from infaug.train.state import MethodResult
from infaug.train.task import tensor_task

__all__ = ["learn_augmenter", "learn"]

Data = Union[Tuple[Tensor, Tensor], Iterable]


class _LastLayer(nn.Module):
    """Any classifier seen as ``features(x)`` and ``head`` (its last ``nn.Linear``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.head = last_linear(model)

    def features(self, x: Tensor) -> Tensor:
        return last_layer_features(self.model, x)[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _tensors(data: Data, name: str, device) -> Tuple[Tensor, Tensor]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        images, labels = data
    else:
        batches = [(b[0], b[1]) for b in data]
        if not batches:
            raise ValueError(f"{name}: the loader gave no batches")
        images, labels = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    if images.dim() != 4 or labels.shape != images.shape[:1]:
        raise ValueError(f"{name}: expected images (N, C, H, W) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}")
    return images.to(device), labels.to(device=device, dtype=torch.long)


def learn(
    model: nn.Module,
    train: Data,
    validation: Data,
    *,
    unlabelled: Optional[Tensor] = None,
    test: Optional[Data] = None,
    config: Optional[Config] = None,
    seed: int = 0,
    generator: Optional[nn.Module] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
) -> MethodResult:
    """:func:`learn_augmenter`'s work, returning all of it: the ``MethodResult`` of ``infaug run``'s
    ``proposed`` (F's validation and, with ``test``, test loss and accuracy; the rounds' records,
    with ``target_pseudo_labelled`` for ``encoder.target = "pseudo"``; E, G and the trained
    classifier). The arguments are :func:`learn_augmenter`'s, ``unlabelled`` included."""
    config = Config() if config is None else config
    device = next(model.parameters()).device
    train, validation = _tensors(train, "train", device), _tensors(validation, "validation", device)
    test = None if test is None else _tensors(test, "test", device)
    task = tensor_task(_LastLayer(model), train, validation, test, unlabelled, config, seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the caller's RNG is left alone
        if generator is None:
            generator = pretrain(task, config, seed)[0]
        return run_method("proposed", task, config, seed, generator=generator, optimizer=optimizer)


def learn_augmenter(
    model: nn.Module,
    train: Data,
    validation: Data,
    *,
    unlabelled: Optional[Tensor] = None,
    config: Optional[Config] = None,
    seed: int = 0,
    generator: Optional[nn.Module] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
) -> Augmenter:
    """Trains ``model`` by ``infaug run``'s ``proposed`` on your data and returns the learned
    augmentation (E and G) as an :class:`infaug.Augmenter`.

    Args:
        model: your classifier (its last layer an ``nn.Linear`` producing its output), untrained or
            to be trained further; it is trained in place for ``config.classifier.epochs`` epochs.
        train, validation: (images (N, C, H, W) in [0, 1], labels (N,)) or DataLoaders of such
            batches. E's target is the validation split (with ``encoder.target = "pseudo"`` joined
            by pseudo-labelled unlabelled images): keep it apart from ``train``.
        unlabelled: more images (M, C, H, W), without labels. G's GAN trains on all of them. With
            ``encoder.target = "pseudo"``, ``encoder.target_size`` of them (5000 by default; M
            must be at least that) are held out for E's target, labelled by F at each round where
            it is confident. With ``semi.ratio`` > 0, F's semi-supervised steps draw on the rest,
            which must not be empty.
        config: the settings of ``infaug run`` (``infaug.config.Config``; default: the defaults, the
            default preset's): classifier (epochs, batch size, learning rate, damping), generator,
            encoder (its steps, ``shrink`` factors judged by F's round, its ``target``), loop (rounds,
            warm-up), semi (F's semi-supervised training; off by default), heuristic (the affine
            ranges of G's flow critic), data.encoder_holdout.
        seed: every initialisation and random draw follows from it (as in ``infaug run --seeds``).
        generator: an already pre-trained G to reuse (then G's pre-training is skipped).
        optimizer: an optimiser over ``model``'s parameters to use instead of AdamW with the config's
            learning rate and weight decay; the cosine schedule over the epochs scales its rate.

    The result equals that of ``run_method("proposed", ...)`` for the same model, data, seed and
    config (``tests/test_learn.py``). Under torchrun every process passes the same data and gets
    the same Augmenter, as ``infaug run`` trains under torchrun. :func:`learn` returns the losses
    and the rounds' records too.
    """
    result = learn(model, train, validation, unlabelled=unlabelled, config=config, seed=seed, generator=generator,
                   optimizer=optimizer)
    return Augmenter(result.generator, result.encoder)
