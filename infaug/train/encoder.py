"""Training E by influence: with F and G fixed, minimise the mean I_aug of E's augmentations.

The loss of a batch of labelled training samples z = (x, y) is

    mean_i clip(change_i / sigma)
      + tau_penalty * mean_i relu(|tau_i|^2 / latent - r)  +  kl * mean_i |mu_i|^2 / (2 latent),

tau_i = mu_i + noise * eps_i with mu_i = E(x_i) (see ``infaug.models.encoder``), and change_i what
the objective predicts replacing z_i by (G(x_i, tau_i), y_i) does to F's validation loss. The
objective is one small interface, :class:`Objective`: ``change`` per augmented sample and its
scale sigma. The method's is :class:`LastLayerObjective`: I_aug through F's last layer, whose
gradient flows from the closed-form ``infaug.influence`` through F's features of x~, the fused
``infaug.augment`` and G into E; sigma, the standard deviation of I_up over the training samples
at this F, makes the objective's scale (which grows with |s_val|) independent of the problem, so
the weights and the learning rate mean the same everywhere. A new objective is a new class with
these two members (``docs/experiments.md`` records the ones tried and retired).

Two terms keep E where the influence function's prediction holds. It is a first-order, local
prediction, and the raw objective rewards without bound augmentations whose gradient is huge:
samples F gets badly wrong, which is what destroying the digit achieves. ``clip`` c > 0 replaces
each normalised change v by c tanh(v / c), so one sample gains at most c and E is paid for making
many samples moderately helpful rather than a few extreme; ``kl`` is the mean-shift part of
KL(N(mu, noise^2) | N(0, noise^2)) per latent dimension times noise^2, a trust region around G's
prior. The tau penalty keeps tau within the prior's typical radius, where G was trained.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from infaug import distributed
from infaug import ops as fused_ops
from infaug.engine import LastLayerInfluence
from infaug.train.checkpoint import check_step
from infaug.train.classifier import features
from infaug.train.modes import frozen
from infaug.util.progress import progress

__all__ = ["LastLayerObjective", "Objective", "encoder_loss", "i_aug", "mean_scaler", "tau_penalty", "train_encoder"]


class Objective(Protocol):
    """What E minimises: the predicted change of F's validation loss per augmented sample.

    ``model`` is F, held fixed (eval mode, no gradients) while E trains; ``scale`` (a positive scalar) is the change's typical size over the samples E trains on, by which
    each change is divided before it is clipped; ``change(x_aug, labels, rows)`` is the change (N,)
    for the augmentations ``x_aug`` (N, C, H, W) of the rows ``rows`` (N,) of those samples,
    differentiable in ``x_aug``."""

    model: nn.Module
    scale: Tensor

    def change(self, x_aug: Tensor, labels: Tensor, rows: Tensor) -> Tensor: ...


class LastLayerObjective:
    """I_aug through F's last layer: ``influence`` of F's features of x~ against the
    engine's s_val, minus I_up of the original row (computed once, F being fixed).

    Args:
        model: F, with ``features`` and ``head``; fixed while E trains.
        engine: s_val at F's current weights (``infaug.train.classifier.influence_engine``).
        images, labels: the training samples E trains on (N, C, H, W) and (N,); ``rows`` index them.
        ops: the module whose ``influence`` is used: ``infaug.ops`` (the fused kernel) or, for tests
            and benchmarks, ``infaug.reference``.
    """

    def __init__(self, model: nn.Module, engine: LastLayerInfluence, images: Tensor, labels: Tensor, *, ops=fused_ops) -> None:
        self.model, self.engine, self.ops = model, engine, ops
        with torch.no_grad():
            self.base = engine.up(features(model, images), labels)  # I_up (N,) of the originals
        self.scale = (self.base.std() if len(self.base) > 1 else self.base.abs().mean()).clamp_min(1e-12)

    def change(self, x_aug: Tensor, labels: Tensor, rows: Tensor) -> Tensor:
        e = self.engine
        scores = self.ops.influence(self.model.features(x_aug), labels, e.weight, e.bias, e.s_weight, e.s_bias)
        return scores - self.base[rows]


def _tau_excess(tau: Tensor) -> Tensor:
    """relu(|tau|^2 / latent - r) per sample (N,), r = 1 + 3 sqrt(2 / latent)."""
    latent = tau.shape[1]
    return torch.relu(tau.square().mean(1) - (1 + 3 * (2 / latent) ** 0.5))


def tau_penalty(tau: Tensor) -> Tensor:
    """mean over samples of relu(|tau|^2 / latent - r): zero inside the prior's typical radius,
    r = 1 + 3 sqrt(2 / latent) (|tau|^2 / latent of a prior draw has mean 1 and standard deviation
    sqrt(2 / latent), so r is three of them beyond the mean)."""
    return _tau_excess(tau).mean()


def i_aug(model: nn.Module, engine: LastLayerInfluence, x: Tensor, x_aug: Tensor, labels: Tensor) -> Tensor:
    """I_aug (N,) of replacing each (x, y) by (x_aug, y), at F's current weights, without gradients."""
    return engine.aug(features(model, x), features(model, x_aug), labels)


def encoder_loss(
    encoder: nn.Module,
    generator: nn.Module,
    objective: Objective,
    x: Tensor,
    y: Tensor,
    rows: Tensor,
    *,
    penalty: float,
    rng: torch.Generator | None,
    kl: float = 0.0,
    clip: float = 0.0,
    ops=fused_ops,
    total: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(loss, mean change) of the batch ``x``, ``y`` (the rows ``rows`` of the objective's samples;
    see the module docstring). ``ops``: the module whose ``augment`` G uses (the fused one, or
    ``infaug.reference``). ``total``: the global batch's size when ``x`` is this rank's shard of it;
    each per-sample term is then summed and divided by ``total / P``, so that the ranks' gradients
    average to the global batch's (the mean change returned is then this shard's sum over ``total``)."""
    tau, mu = encoder(x, generator=rng, return_mean=True)
    change = objective.change(generator(x, tau, ops=ops), y, rows)
    values = change / objective.scale
    if clip > 0:
        values = clip * torch.tanh(values / clip)
    if total is None:
        loss = values.mean() + penalty * tau_penalty(tau) + kl * 0.5 * mu.square().mean()
        return loss, change.mean()
    per_sample = values + penalty * _tau_excess(tau) + kl * 0.5 * mu.square().mean(1)
    return per_sample.sum() * (distributed.world_size() / total), change.sum() / total


def train_encoder(
    encoder: nn.Module,
    generator: nn.Module,
    objective: Objective,
    images: Tensor,
    labels: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    penalty: float,
    rng: torch.Generator,
    kl: float = 0.0,
    clip: float = 0.0,
    label: str = "E training",
    noise_rng: torch.Generator | None = None,
) -> list[float]:
    """Trains ``encoder`` in place against ``objective`` on ``images``, ``labels`` (the samples the
    objective was built on); returns the mean change of each step's batch (unscaled). F (inside the
    objective) and G are fixed. A non-finite loss or gradient raises
    :class:`infaug.train.checkpoint.NonFiniteError` (naming ``label`` and the step) before the
    optimiser steps. ``rng`` draws the batches (the same on every rank), ``noise_rng`` (default
    ``rng``) E's noise. Under torchrun E is in DistributedDataParallel and each rank takes the rows
    ``rank::P`` of every batch."""
    noise_rng = rng if noise_rng is None else noise_rng
    parts = distributed.world_size()
    module = distributed.data_parallel(encoder)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    history = []
    encoder.train()
    with frozen(generator, objective.model):
        for step in progress(range(1, steps + 1), desc="E (influence)", unit="step"):
            rows = torch.randperm(len(labels), generator=rng)[:batch_size].to(images.device)
            total = len(rows)
            rows = distributed.shard(rows) if parts > 1 else rows
            loss, mean_change = encoder_loss(module, generator, objective, images[rows], labels[rows], rows, penalty=penalty,
                                             rng=noise_rng, kl=kl, clip=clip, total=total if parts > 1 else None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            check_step(label, step, loss, encoder.parameters())
            optimizer.step()
            mean_change = mean_change.detach()
            if parts > 1:
                mean_change = distributed.all_reduce_sum(mean_change.double().reshape(1))[0]
            history.append(float(mean_change))
    encoder.eval()
    return history


def mean_scaler(encoder: nn.Module):
    """A function ``scale(a)`` that sets E's mean mu(x) to a times what it is now, by scaling E's
    last layer (a = 0: G's prior, a = 1: E unchanged); E's noise is left as it is."""
    last = encoder.net[-1]
    weight, bias = last.weight.detach().clone(), last.bias.detach().clone()

    @torch.no_grad()
    def scale(a: float) -> None:
        last.weight.copy_(weight * a)
        last.bias.copy_(bias * a)

    return scale
