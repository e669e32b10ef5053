"""Training E by influence (SPEC 3): with F and G fixed, minimise the mean I_aug of E's augmentations.

The loss of a batch of labelled training samples z = (x, y) is

    mean_i clip(I_aug(z_i, G(x_i, tau_i)) / sigma)
      + tau_penalty * mean_i relu(|tau_i|^2 / latent - r)  +  kl * mean_i |mu_i|^2 / (2 latent),

tau_i = mu_i + noise * eps_i with mu_i = E(x_i) (see ``infaug.models.encoder``). The gradient of the first term
flows from the closed-form ``infaug.influence`` through F's features of x~, the fused
``infaug.augment`` and G into E. sigma, the standard deviation of I_up over the training samples
at this F, makes the objective's scale (which grows with |s_val|) independent of the problem, so
the weights and the learning rate mean the same everywhere. The tau penalty keeps tau within the
prior's typical radius, where G was trained. With a ``NetworkInfluence`` engine
(``encoder.influence = "network"``) I_aug is that through all of F's parameters instead of its
last layer, and its gradient flows through F's whole forward pass. With an ``UnrolledObjective``
(``encoder.influence = "unrolled"``) the first term is instead clip(delta / sigma) for the whole
batch: delta the measured change of F's validation loss after a few gradient steps on the batch
with E's augmentations against the batch with the originals (``infaug.train.unrolled``), sigma the
mean |delta| of G's prior's augmentations over a few batches at the start of the round.

Two terms keep E where the influence function's prediction holds. It is a first-order, local
prediction, and the raw objective rewards without bound augmentations whose gradient is huge:
samples F gets badly wrong, which is what destroying the digit achieves. ``clip`` c > 0 replaces
each normalised I_aug v by c tanh(v / c), so one sample gains at most c and E is paid for making
many samples moderately helpful rather than a few extreme; ``kl`` is the mean-shift part of
KL(N(mu, noise^2) | N(0, noise^2)) per latent dimension times noise^2, a trust region around G's
prior.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from infaug import distributed
from infaug import ops as fused_ops
from infaug.engine import LastLayerInfluence
from infaug.ground_truth import train_logistic, validation_loss
from infaug.train.checkpoint import check_step
from infaug.train.classifier import features
from infaug.train.modes import evaluating, frozen
from infaug.train.network_influence import NetworkInfluence
from infaug.train.progress import progress
from infaug.train.unrolled import UnrolledObjective

__all__ = ["choose_shrink", "encoder_loss", "i_aug", "mean_scaler", "tau_penalty", "train_encoder"]


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
    model: nn.Module,
    engine: LastLayerInfluence | NetworkInfluence | UnrolledObjective,
    x: Tensor,
    y: Tensor,
    base: Tensor,
    *,
    scale: float | Tensor,
    penalty: float,
    rng: torch.Generator | None,
    kl: float = 0.0,
    clip: float = 0.0,
    ops=fused_ops,
    total: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(loss, mean I_aug) of one batch (see the module docstring). ``base`` is I_up (N,) of the
    originals; ``ops`` is the module whose ``augment`` and ``influence`` are used: the fused ones,
    or ``infaug.reference`` for tests and benchmarks. ``total``: the global batch's size when
    ``x`` is this rank's shard of it; each per-sample term is then summed and divided by
    ``total / P``, so that the ranks' gradients average to the global batch's (the mean I_aug
    returned is then this shard's sum over ``total``)."""
    tau, mu = encoder(x, generator=rng, return_mean=True)
    x_aug = generator(x, tau, ops=ops)
    if isinstance(engine, UnrolledObjective):  # one measured value for the batch (one process only)
        delta = engine.delta(x, x_aug, y)
        value = delta / scale
        if clip > 0:
            value = clip * torch.tanh(value / clip)
        return value + penalty * tau_penalty(tau) + kl * 0.5 * mu.square().mean(), delta
    if isinstance(engine, NetworkInfluence):
        scores = engine.up(x_aug, y)  # through all of F (encoder.influence = "network")
    else:
        scores = ops.influence(model.features(x_aug), y, engine.weight, engine.bias, engine.s_weight, engine.s_bias)
    values = (scores - base) / scale
    if clip > 0:
        values = clip * torch.tanh(values / clip)
    if total is None:
        loss = values.mean() + penalty * tau_penalty(tau) + kl * 0.5 * mu.square().mean()
        return loss, (scores - base).mean()
    per_sample = values + penalty * _tau_excess(tau) + kl * 0.5 * mu.square().mean(1)
    return per_sample.sum() * (distributed.world_size() / total), (scores - base).sum() / total


def train_encoder(
    encoder: nn.Module,
    generator: nn.Module,
    model: nn.Module,
    engine: LastLayerInfluence | NetworkInfluence | UnrolledObjective,
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
    """Trains ``encoder`` in place; returns the mean I_aug of each step's batch (unscaled; with an
    ``UnrolledObjective``, the batch's delta). A non-finite loss or gradient raises
    :class:`infaug.train.checkpoint.NonFiniteError` (naming ``label`` and the step) before the
    optimiser steps. ``rng`` draws the batches (the same on
    every rank), ``noise_rng`` (default ``rng``) E's noise. Under torchrun E is in
    DistributedDataParallel and each rank takes the rows ``rank::P`` of every batch."""
    noise_rng = rng if noise_rng is None else noise_rng
    parts = distributed.world_size()
    unrolled = isinstance(engine, UnrolledObjective)
    if unrolled and parts > 1:
        raise ValueError(f"encoder.influence = 'unrolled' trains E in one process; this run has {parts}")
    module = distributed.data_parallel(encoder)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    if unrolled:  # no per-sample base; the scale: mean |delta| of G's prior (E's start) over a few batches
        base = torch.zeros(len(labels), device=images.device)
        scale = _unrolled_scale(engine, generator, images, labels, batch_size, rng, noise_rng)
    else:
        with torch.no_grad():  # I_up(z): constant, F is fixed
            base = engine.up(images, labels) if isinstance(engine, NetworkInfluence) else engine.up(features(model, images), labels)
        scale = (base.std() if len(base) > 1 else base.abs().mean()).clamp_min(1e-12)
    history = []
    encoder.train()
    with frozen(generator, model):
        for step in progress(range(1, steps + 1), desc="E (influence)", unit="step"):
            rows = torch.randperm(len(labels), generator=rng)[:batch_size].to(images.device)
            total = len(rows)
            rows = distributed.shard(rows) if parts > 1 else rows
            x, y = images[rows], labels[rows]
            loss, mean_i_aug = encoder_loss(
                module, generator, model, engine, x, y, base[rows], scale=scale, penalty=penalty, rng=noise_rng, kl=kl,
                clip=clip, total=total if parts > 1 else None,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            check_step(label, step, loss, encoder.parameters())
            optimizer.step()
            mean_i_aug = mean_i_aug.detach()
            if parts > 1:
                mean_i_aug = distributed.all_reduce_sum(mean_i_aug.double().reshape(1))[0]
            history.append(float(mean_i_aug))
    encoder.eval()
    return history


SCALE_BATCHES = 4  # batches of G's prior's augmentations whose mean |delta| scales the unrolled objective


def _unrolled_scale(engine: UnrolledObjective, generator, images, labels, batch_size, rng, noise_rng) -> Tensor:
    """mean |delta| over SCALE_BATCHES batches augmented from G's prior (what an untrained E draws)."""
    values = []
    with frozen(generator):
        for _ in range(SCALE_BATCHES):
            rows = torch.randperm(len(labels), generator=rng)[:batch_size].to(images.device)
            x = images[rows]
            with torch.no_grad():
                x_aug = generator(x, generator.sample_latent(len(x), generator=noise_rng, device=x.device))
            values.append(engine.delta(x, x_aug, labels[rows]).detach().abs())
    return torch.stack(values).mean().clamp_min(1e-12)


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


@torch.no_grad()
def choose_shrink(
    encoder: nn.Module,
    augment,
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    validation: tuple[Tensor, Tensor],
    factors,
    *,
    damping: float,
    rng: torch.Generator,
) -> tuple[float, list[float]]:
    """Scales E's mean mu(x) by the factor a in ``factors`` that the exact last layer prefers;
    returns (a, the validation loss for each factor).

    The influence function is a first-order prediction, and E, trained to minimise it, can move
    to where it no longer holds. Here the step E took is checked without that approximation: for
    each a, E's last layer is scaled by a (tau = a mu(x) + noise eps; a = 0 is G's prior), every
    training sample gets one augmentation (the same eps for every a), F's last layer is retrained
    to convergence on the originals plus the augmentations (``infaug.ground_truth``, float64, L2 =
    ``damping``) and its validation loss measured; E keeps the factor with the lowest. With one
    factor, E's mean is scaled by it and nothing is measured.
    """
    scale = mean_scaler(encoder)
    factors = [float(a) for a in factors]
    if len(factors) == 1:
        scale(factors[0])
        return factors[0], []
    x, y = train
    h, y_cpu = features(model, x).double().cpu(), y.cpu()
    h_val, y_val = features(model, validation[0]).double().cpu(), validation[1].cpu()
    start = (model.head.weight.detach().double().cpu(), model.head.bias.detach().double().cpu())
    draws = rng.get_state()
    losses = []
    with evaluating(encoder):
        for a in factors:
            scale(a)
            rng.set_state(draws)
            h_aug = features(model, augment(x, rng)).double().cpu()
            w, b = train_logistic(torch.cat([h, h_aug]), torch.cat([y_cpu, y_cpu]), damping, start=start)
            losses.append(validation_loss(h_val, y_val, w, b))
    best = factors[min(range(len(factors)), key=losses.__getitem__)]
    best = distributed.all_gather_objects(best)[0]  # rank 0's choice on every rank
    scale(best)
    return best, losses
