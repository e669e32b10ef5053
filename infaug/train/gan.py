"""G's pre-training by WGAN-GP (Gulrajani et al., 2017) with two critics.

- the image critic tells real images x from augmented ones G(x', tau), tau from the prior;
- the flow critic tells G's smoothed sampling fields from those of random affine transforms in
  the heuristic's ranges;
- G also minimises 1 / (MSE(s, identity) + eps) + 1 / (MSE(x~, x) + eps), which keeps it away from
  the identity transform (a G that does nothing would fool the image critic perfectly).

Under torchrun (``infaug.distributed``) G and both critics are in DistributedDataParallel and each
of the P ranks draws its own batches (of ``batch_size / P`` images, from its own seeded stream):
the critics' steps (both gaps and the gradient penalty, whose double backward DDP handles as it
does a single one) and G's step average their gradients over the ranks in backward. G's step
scores its outputs with the critics themselves, not their DDP wrappers: they are frozen there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from infaug import distributed
from infaug.augmentations import AffineRanges, affine_fields, random_affine
from infaug.models import Critic, Generator, sampling_field
from infaug.flow import base_grid
from infaug.train.checkpoint import Phase, check_step, rng_states, set_rng_states
from infaug.train.modes import frozen
from infaug.util.progress import progress

__all__ = ["GanHistory", "gradient_penalty", "pretrain_from_config", "pretrain_generator"]


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """mean over samples of (|grad_x critic(x_hat)| - 1)^2 at x_hat = a real + (1 - a) fake,
    a ~ U(0, 1) per sample; differentiable (create_graph) so the critic's step can descend it."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), generator=generator).to(real)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    norm = torch.sqrt(grad.flatten(1).square().sum(1) + 1e-12)  # eps: a finite gradient at norm 0
    return (norm - 1).square().mean()


@dataclass
class GanHistory:
    """Per generator step: the critics' Wasserstein estimates, their gradient penalties, G's loss."""

    image_distance: list = field(default_factory=list)
    flow_distance: list = field(default_factory=list)
    image_penalty: list = field(default_factory=list)
    flow_penalty: list = field(default_factory=list)
    generator_loss: list = field(default_factory=list)
    flow_mse: list = field(default_factory=list)

    def append(self, *values: Tensor) -> None:
        """One step's values, in the order of the fields (on P > 1 ranks, their mean over the ranks)."""
        stacked = torch.stack([value.detach().double() for value in values])
        if distributed.world_size() > 1:
            stacked = distributed.all_reduce_sum(stacked.cpu()) / distributed.world_size()
        for name, value in zip(vars(self), stacked.tolist()):
            getattr(self, name).append(value)


def _rank_batch_size(batch_size: int) -> int:
    """This rank's share of the global batch (all of it in one process)."""
    parts = distributed.world_size()
    if parts == 1:
        return batch_size
    share = distributed.shard_sizes(batch_size)[distributed.rank()]
    if share == 0:
        raise ValueError(f"generator.batch_size is below the number of processes, {parts}")
    return share


class _Wgan:
    """G, its two critics and both optimisers: one critic step, one generator step, the state."""

    def __init__(self, generator: Generator, channels: int, *, critic_width: int, lr: float, device: torch.device) -> None:
        self.generator = generator
        self.image_critic, self.flow_critic = Critic(channels, critic_width).to(device), Critic(2, critic_width).to(device)
        self.critic_parameters = list(self.image_critic.parameters()) + list(self.flow_critic.parameters())
        self.critic_optimizer = torch.optim.Adam(self.critic_parameters, lr=lr, betas=(0.5, 0.9))
        self.generator_optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.9))
        # the modules themselves in one process; in DistributedDataParallel on P > 1 ranks
        self.image_critic_ddp = distributed.data_parallel(self.image_critic)
        self.flow_critic_ddp = distributed.data_parallel(self.flow_critic)
        self.generator_ddp = distributed.data_parallel(generator)

    _MODULES = ("generator", "image_critic", "flow_critic", "critic_optimizer", "generator_optimizer")

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in self._MODULES}

    def load_state_dict(self, saved: dict) -> None:
        for name in self._MODULES:
            getattr(self, name).load_state_dict(saved[name])

    def critic_step(self, real: Tensor, source: Tensor, real_flows: Callable[[], Tensor], *, penalty_weight: float, rng, step: int) -> tuple:
        """Critics: maximise critic(real) - critic(fake), minus the gradient penalty. ``real_flows``
        draws the sampling fields of random affine transforms (the flow critic's real samples),
        after G's latents, from the same stream."""
        g = self.generator
        with torch.no_grad():
            params = g.transform_parameters(g.sample_latent(len(source), generator=rng))
            fake, fake_flow = g.apply_parameters(source, params), sampling_field(params[0], params[1], g.smooth)
        flow = real_flows()
        image_gap = self.image_critic_ddp(real).mean() - self.image_critic_ddp(fake).mean()
        flow_gap = self.flow_critic_ddp(flow).mean() - self.flow_critic_ddp(fake_flow).mean()
        image_gp = gradient_penalty(self.image_critic_ddp, real, fake, rng)
        flow_gp = gradient_penalty(self.flow_critic_ddp, flow, fake_flow, rng)
        loss = -(image_gap + flow_gap) + penalty_weight * (image_gp + flow_gp)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        check_step("G pre-training (critics)", step, loss, self.critic_parameters)
        self.critic_optimizer.step()
        return image_gap, flow_gap, image_gp, flow_gp

    def generator_step(self, source: Tensor, identity: Tensor, *, anti_identity: float, eps: float, rng, step: int) -> tuple:
        """G: maximise both critics' scores of its outputs, and stay away from the identity."""
        g = self.generator
        tau = g.sample_latent(len(source), generator=rng)
        fake, params = self.generator_ddp(source, tau, return_params=True)
        fake_flow = sampling_field(params[0], params[1], g.smooth)
        flow_mse = (fake_flow - identity).square().mean()
        image_mse = (fake - source).square().mean()
        with frozen(self.image_critic, self.flow_critic):  # the critics are fixed in G's step
            loss = (
                -self.image_critic(fake).mean()
                - self.flow_critic(fake_flow).mean()
                + anti_identity * (1 / (flow_mse + eps) + 1 / (image_mse + eps))
            )
            self.generator_optimizer.zero_grad(set_to_none=True)
            loss.backward()
        check_step("G pre-training (generator)", step, loss, g.parameters())
        self.generator_optimizer.step()
        return loss, flow_mse


def pretrain_generator(
    generator: Generator,
    images: Tensor,
    *,
    steps: int,
    critic_steps: int = 3,
    critic_width: int = 16,
    batch_size: int = 64,
    lr: float = 1e-3,
    gradient_penalty_weight: float = 10.0,
    anti_identity: float = 0.02,
    anti_identity_eps: float = 0.01,
    ranges: AffineRanges = AffineRanges(),
    rng: torch.Generator,
    checkpoint: Phase | None = None,
    seed: int = 0,
) -> GanHistory:
    """Trains ``generator`` in place on ``images`` (N, C, H, W) in [0, 1] (labels are not needed).
    The defaults are those of ``infaug.config.GeneratorConfig``. With ``checkpoint``, training
    continues from the state saved there and saves its state as it goes (when due); a non-finite
    loss or gradient raises :class:`infaug.train.checkpoint.NonFiniteError` before any step.
    On P > 1 ranks ``rng`` is this rank's stream and ``seed`` (the run's) reseeds it when a run
    resumes on another number of ranks."""
    device, batch_size = images.device, _rank_batch_size(batch_size)
    _, c, h, w = images.shape
    wgan = _Wgan(generator, c, critic_width=critic_width, lr=lr, device=device)
    identity = base_grid(h, w, align_corners=False, dtype=images.dtype, device=device)
    history, start = GanHistory(), 0

    def state() -> dict:
        return {"step": len(history.generator_loss), **wgan.state_dict(), "history": vars(history),
                "rng": rng_states(rng=rng), "rank_rng": distributed.rank_states(rng)}

    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        wgan.load_state_dict(saved)
        history, start = GanHistory(**saved["history"]), saved["step"]
        set_rng_states(saved["rng"], rng=rng)
        distributed.restore_rank_rng(saved.get("rank_rng"), rng, seed, "G pre-training", f"G step {start}")

    def batch() -> Tensor:
        return images[torch.randint(0, len(images), (batch_size,), generator=rng).to(device)]

    def real_flows() -> Tensor:
        theta = random_affine(batch_size, ranges, generator=rng, device=device).to(images.dtype)
        return sampling_field(*affine_fields(theta, h, w), generator.smooth)

    generator.train()
    for step in progress(range(start + 1, steps + 1), desc="G (WGAN-GP)", unit="step", initial=start, total=steps):
        for _ in range(critic_steps):
            real, source = batch(), batch()
            gaps = wgan.critic_step(real, source, real_flows, penalty_weight=gradient_penalty_weight, rng=rng, step=step)
        generator_loss, flow_mse = wgan.generator_step(batch(), identity, anti_identity=anti_identity,
                                                         eps=anti_identity_eps, rng=rng, step=step)
        history.append(*gaps, generator_loss, flow_mse)
        if checkpoint is not None and step < steps:
            checkpoint.save(state, force=False, note=f"G step {step} of {steps}")
    generator.eval()
    return history


def pretrain_from_config(
    generator: Generator, images: Tensor, settings, *, ranges: AffineRanges, rng: torch.Generator, steps: int | None = None,
    checkpoint: Phase | None = None, seed: int = 0,
) -> GanHistory:
    """:func:`pretrain_generator` with the settings of a ``infaug.config.GeneratorConfig``
    (``steps`` overrides its number of generator steps)."""
    return pretrain_generator(
        generator, images, steps=settings.steps if steps is None else steps, critic_steps=settings.critic_steps,
        critic_width=settings.critic_width, batch_size=settings.batch_size, lr=settings.lr,
        gradient_penalty_weight=settings.gradient_penalty, anti_identity=settings.anti_identity,
        anti_identity_eps=settings.anti_identity_eps, ranges=ranges, rng=rng, checkpoint=checkpoint, seed=seed,
    )
