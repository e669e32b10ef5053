"""Training and evaluating F.

Each step trains on a batch of originals together with their augmentations (the method's
``augment`` callable; the identity for ``none``), minimising the mean cross-entropy plus
(damping / 2) |theta|^2 on the last layer, so that the influence engine's damping is the L2 that F
was trained with.

Under torchrun (``infaug.distributed``) F is in DistributedDataParallel: every rank draws the same
global batch, takes its rows ``rank::P``, and weights its loss so that the gradient averaged over
the ranks is that of the global batch's mean loss; the influence engine is fitted on each rank's
shard of the training and validation features and all-reduced.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infaug import distributed
from infaug.engine import LastLayerInfluence
from infaug.train.checkpoint import check_step
from infaug.train.modes import evaluating
from infaug.train.semi import Unlabelled, consistency_loss, weak_view
from infaug.util.progress import progress

__all__ = ["ClassifierTrainer", "evaluate", "features", "influence_engine"]

Augment = Callable[[Tensor, torch.Generator], Tensor]  # a method's augmentation: (x, rng) -> x~


class ClassifierTrainer:
    """F, its optimiser and its learning-rate schedule over ``total_epochs``; ``train`` runs some of
    those epochs, so the alternating loop can interleave other phases without restarting them.
    ``optimizer``: one over ``model``'s parameters to use instead of AdamW (``lr`` and
    ``weight_decay`` are then its own); the cosine schedule scales its learning rate."""

    def __init__(
        self,
        model: nn.Module,
        *,
        total_epochs: int,
        steps_per_epoch: int,
        lr: float,
        weight_decay: float,
        damping: float,
        optimizer: Optional[torch.optim.Optimizer] = None,
    ) -> None:
        self.model = model
        self.forward = distributed.data_parallel(model)  # model itself in one process
        self.damping = damping
        head = set(model.head.parameters())
        body = [p for p in model.parameters() if p not in head]
        self.optimizer = optimizer if optimizer is not None else torch.optim.AdamW(
            [{"params": body, "weight_decay": weight_decay}, {"params": list(head), "weight_decay": 0.0}], lr=lr
        )
        total = max(1, total_epochs * steps_per_epoch)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
        self.epochs_done = 0
        self.steps_done = 0

    def state_dict(self) -> dict:
        """F's weights with the optimiser's, the schedule's and the progress, for a checkpoint."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "epochs_done": self.epochs_done, "steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.epochs_done, self.steps_done = state["epochs_done"], state["steps_done"]

    def loss(self, x: Tensor, y: Tensor, total: Optional[int] = None, pseudo: Optional[tuple] = None) -> Tensor:
        """Mean cross-entropy plus the head's L2. ``total``: the global batch's size when ``x`` is
        this rank's shard of it; the cross-entropy is then summed and divided by ``total / P``, so
        that the mean of the ranks' gradients (what DistributedDataParallel applies) is the
        gradient of the global batch's loss. ``pseudo`` = (weak probabilities (U, K), threshold,
        weight, the global U): the last U rows of ``x`` are strong views of unlabelled images,
        and ``weight`` times their consistency loss (``infaug.train.semi``) is added, likewise
        averaged over the global U."""
        l2 = sum(p.square().sum() for p in self.model.head.parameters())
        logits, scale = self.forward(x), distributed.world_size()
        labelled = len(y)
        if total is None:
            loss = F.cross_entropy(logits[:labelled], y)
        else:
            loss = F.cross_entropy(logits[:labelled], y, reduction="sum") * (scale / total)
        if pseudo is not None:
            probs, threshold, weight, u_total = pseudo
            consistency, _ = consistency_loss(logits[labelled:], probs, threshold, reduction="mean" if total is None else "sum")
            loss = loss + weight * (consistency if total is None else consistency * (scale / u_total))
        return loss + 0.5 * self.damping * l2

    def train(
        self,
        images: Tensor,
        labels: Tensor,
        epochs: int,
        *,
        augment: Optional[Augment],
        batch_size: int,
        generator: torch.Generator,
        augment_rng: Optional[torch.Generator] = None,
        label: str = "F",
        on_epoch: Optional[Callable[[], None]] = None,
        unlabelled: Optional[Unlabelled] = None,
    ) -> list[float]:
        """Runs ``epochs`` epochs; returns the mean training loss of each. ``generator`` draws the
        batch order, ``augment_rng`` (default: ``generator``) the augmentations, so that methods
        which draw different numbers of random values still see the same batches. ``on_epoch`` is
        called after each epoch (the run checkpoints there). A non-finite loss or gradient stops
        training before the optimiser steps (:class:`infaug.train.checkpoint.NonFiniteError`).
        ``unlabelled``: F's semi-supervised part (``infaug.train.semi``): each step adds
        ``unlabelled.ratio`` unlabelled images per labelled one, their strong views (``augment``'s,
        or for no augmentation the weak views) trained on their confident pseudo-labels."""
        augment_rng = generator if augment_rng is None else augment_rng
        parts = distributed.world_size()
        if parts > 1 and batch_size < parts:
            raise ValueError(f"classifier.batch_size = {batch_size} is below the number of processes, {parts}: each needs a row of every batch")
        self.model.train()
        history = []
        for _ in progress(range(epochs), desc=label, unit="epoch"):
            order = torch.randperm(len(labels), generator=generator).to(images.device)
            total, count = 0.0, 0
            for start in range(0, len(order), batch_size):
                x, y, size, pseudo = self._batch(images, labels, order[start : start + batch_size], augment, augment_rng, unlabelled)
                loss = self.loss(x, y, pseudo=pseudo) if parts == 1 else self.loss(x, y, total=size, pseudo=pseudo)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                value = check_step(label, self.steps_done + 1, loss, self.model.parameters())
                self.optimizer.step()
                self.schedule.step()
                self.steps_done += 1
                total, count = total + value * size, count + size
            if parts > 1:  # each rank's loss averages to the global one: sum, then divide by P
                total = float(distributed.all_reduce_sum(torch.tensor([total], dtype=torch.float64))) / parts
            history.append(total / max(count, 1))
            self.epochs_done += 1
            distributed.sync_buffers(self.model)  # P > 1: rank 0's BatchNorm statistics everywhere, before anything reads them
            if on_epoch is not None:
                on_epoch()
        return history


    def _batch(self, images: Tensor, labels: Tensor, rows: Tensor, augment: Optional[Augment], augment_rng: torch.Generator,
               unlabelled: Optional[Unlabelled]) -> Tuple[Tensor, Tensor, int, Optional[tuple]]:
        """(x, y, the global batch's size, ``loss``'s ``pseudo``) of one step on the global batch
        ``rows``: this rank's originals, their augmentations and, with ``unlabelled``, the strong
        views of this rank's share of the step's unlabelled images (drawn alike on every rank)."""
        size = len(rows) * (1 if augment is None else 2)  # the global batch, originals and augmentations
        drawn = None if unlabelled is None else unlabelled.draw(len(rows) * unlabelled.ratio)
        sharded = distributed.world_size() > 1
        rows = distributed.shard(rows) if sharded else rows
        x, y = images[rows], labels[rows]
        if augment is not None:
            with torch.no_grad():
                x = torch.cat([x, augment(x, augment_rng)])
            y = torch.cat([y, y])
        if drawn is None:
            return x, y, size, None
        strong, probs = self._unlabelled_views(unlabelled, *(distributed.shard(d) if sharded else d for d in drawn), augment, augment_rng)
        return torch.cat([x, strong]), y, size, (probs, unlabelled.threshold, unlabelled.weight, len(drawn[0]))

    @torch.no_grad()
    def _unlabelled_views(self, unlabelled: Unlabelled, rows: Tensor, shifts: Tensor, augment: Optional[Augment],
                          augment_rng: torch.Generator) -> Tuple[Tensor, Tensor]:
        """(strong views, F's probabilities on the weak views, in eval mode) of the unlabelled ``rows``."""
        u = unlabelled.images[rows]
        weak = weak_view(u, shifts)
        with evaluating(self.model):
            probs = self.model(weak).softmax(1)
        return (weak if augment is None else augment(u, augment_rng)), probs


@torch.no_grad()
def evaluate(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> Tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in eval mode (its mode is restored after)."""
    loss, correct = 0.0, 0
    with evaluating(model):
        for start in range(0, len(labels), batch_size):
            logits = model(images[start : start + batch_size])
            y = labels[start : start + batch_size]
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    return loss / len(labels), correct / len(labels)


@torch.no_grad()
def features(model: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """F's penultimate features (N, D) in eval mode (its mode is restored after), without gradients."""
    with evaluating(model):
        return torch.cat([model.features(images[s : s + batch_size]) for s in range(0, len(images), batch_size)])


def influence_engine(
    model: nn.Module,
    train: Tuple[Tensor, Tensor],
    validation: Tuple[Tensor, Tensor],
    *,
    damping: float,
    train_augmented: Optional[Tensor] = None,
) -> LastLayerInfluence:
    """s_val at F's current weights: the Hessian over the training samples (and, when given, their
    augmentations, as F is trained on both), g_val over the validation split."""
    images, labels = train
    bias = model.head.bias
    # copies: the engine must not follow the head when F trains on
    engine = LastLayerInfluence(model.head.weight.detach().clone(), None if bias is None else bias.detach().clone(),
                                damping=damping, distributed=distributed.is_distributed())
    # this rank's rows rank::P of the training and validation samples (all of them, uncopied, in one process)
    rows = val_rows = slice(None)
    if distributed.is_distributed():
        rows = distributed.shard(torch.arange(len(labels), device=labels.device))
        val_rows = distributed.shard(torch.arange(len(validation[1]), device=labels.device))
    engine.fit(features(model, images[rows]), labels[rows])
    if train_augmented is not None:
        engine.fit(features(model, train_augmented[rows]), labels[rows])
    engine.set_validation(features(model, validation[0][val_rows]), validation[1][val_rows])
    return engine
