"""G's pre-training by WGAN-GP (Gulrajani et al., 2017) with two critics (SPEC 3, paper 4.3).

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
    device = images.device
    parts = distributed.world_size()
    if parts > 1:
        batch_size = distributed.shard_sizes(batch_size)[distributed.rank()]
        if batch_size == 0:
            raise ValueError(f"generator.batch_size is below the number of processes, {parts}")
    _, c, h, w = images.shape
    image_critic, flow_critic = Critic(c, critic_width).to(device), Critic(2, critic_width).to(device)
    critic_optimizer = torch.optim.Adam(
        list(image_critic.parameters()) + list(flow_critic.parameters()), lr=lr, betas=(0.5, 0.9)
    )
    generator_optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.9))
    # the modules themselves in one process; in DistributedDataParallel on P > 1 ranks
    image_critic_step, flow_critic_step = distributed.data_parallel(image_critic), distributed.data_parallel(flow_critic)
    generator_step = distributed.data_parallel(generator)
    identity = base_grid(h, w, align_corners=False, dtype=images.dtype, device=device)
    history, start = GanHistory(), 0

    def state() -> dict:
        return {
            "step": len(history.generator_loss), "generator": generator.state_dict(),
            "image_critic": image_critic.state_dict(), "flow_critic": flow_critic.state_dict(),
            "critic_optimizer": critic_optimizer.state_dict(), "generator_optimizer": generator_optimizer.state_dict(),
            "history": vars(history), "rng": rng_states(rng=rng), "rank_rng": distributed.rank_states(rng),
        }

    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        generator.load_state_dict(saved["generator"])
        image_critic.load_state_dict(saved["image_critic"])
        flow_critic.load_state_dict(saved["flow_critic"])
        critic_optimizer.load_state_dict(saved["critic_optimizer"])
        generator_optimizer.load_state_dict(saved["generator_optimizer"])
        history, start = GanHistory(**saved["history"]), saved["step"]
        set_rng_states(saved["rng"], rng=rng)
        distributed.restore_rank_rng(saved.get("rank_rng"), rng, seed, "G pre-training", f"G step {start}")

    def batch() -> Tensor:
        return images[torch.randint(0, len(images), (batch_size,), generator=rng).to(device)]

    def real_flows() -> Tensor:
        theta = random_affine(batch_size, ranges, generator=rng, device=device).to(images.dtype)
        return sampling_field(*affine_fields(theta, h, w), generator.smooth)

    generator.train()
    critic_parameters = list(image_critic.parameters()) + list(flow_critic.parameters())
    for step in progress(range(start + 1, steps + 1), desc="G (WGAN-GP)", unit="step", initial=start, total=steps):
        # Critics: maximise critic(real) - critic(fake), minus the gradient penalty.
        for _ in range(critic_steps):
            real, source = batch(), batch()
            with torch.no_grad():
                tau = generator.sample_latent(batch_size, generator=rng)
                params = generator.transform_parameters(tau)
                fake, fake_flow = generator.apply_parameters(source, params), sampling_field(params[0], params[1], generator.smooth)
            flow = real_flows()
            image_gap = image_critic_step(real).mean() - image_critic_step(fake).mean()
            flow_gap = flow_critic_step(flow).mean() - flow_critic_step(fake_flow).mean()
            image_gp = gradient_penalty(image_critic_step, real, fake, rng)
            flow_gp = gradient_penalty(flow_critic_step, flow, fake_flow, rng)
            critic_loss = -(image_gap + flow_gap) + gradient_penalty_weight * (image_gp + flow_gp)
            critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            check_step("G pre-training (critics)", step, critic_loss, critic_parameters)
            critic_optimizer.step()
        # G: maximise both critics' scores of its outputs, and stay away from the identity.
        source = batch()
        tau = generator.sample_latent(batch_size, generator=rng)
        fake, params = generator_step(source, tau, return_params=True)
        fake_flow = sampling_field(params[0], params[1], generator.smooth)
        flow_mse = (fake_flow - identity).square().mean()
        image_mse = (fake - source).square().mean()
        with frozen(image_critic, flow_critic):  # the critics are fixed in G's step
            generator_loss = (
                -image_critic(fake).mean()
                - flow_critic(fake_flow).mean()
                + anti_identity * (1 / (flow_mse + anti_identity_eps) + 1 / (image_mse + anti_identity_eps))
            )
            generator_optimizer.zero_grad(set_to_none=True)
            generator_loss.backward()
        check_step("G pre-training (generator)", step, generator_loss, generator.parameters())
        generator_optimizer.step()
        names = ("image_distance", "flow_distance", "image_penalty", "flow_penalty", "generator_loss", "flow_mse")
        values = torch.stack([v.detach().double() for v in (image_gap, flow_gap, image_gp, flow_gp, generator_loss, flow_mse)])
        if parts > 1:  # the history of the mean over the ranks
            values = distributed.all_reduce_sum(values.cpu()) / parts
        for name, value in zip(names, values.tolist()):
            getattr(history, name).append(value)
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
