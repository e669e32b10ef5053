"""Learning an augmentation for your own classifier, from Python: :func:`learn_augmenter`.

Your classifier must end with an ``nn.Linear`` whose output is its output (the influence engine
differentiates that layer), and should have been trained with an L2 penalty of ``damping`` on it.
The data are tensors or DataLoaders of (images in [0, 1], labels).

Example:
    >>> import torch, infaug
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    >>> x, y = torch.rand(64, 1, 28, 28), torch.arange(64) % 10
    >>> augmenter = infaug.learn_augmenter(model, (x[:48], y[:48]), (x[48:], y[48:]), gan_steps=2, encoder_steps=2)
    >>> augmenter(x[:4]).shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

from typing import Iterable, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from infaug import distributed
from infaug.augmentations import AffineRanges
from infaug.augmenter import Augmenter
from infaug.config import EncoderConfig, GeneratorConfig
from infaug.engine import last_layer_features, last_linear
from infaug.models import Encoder, Generator
from infaug.train.classifier import influence_engine
from infaug.train.encoder import train_encoder
from infaug.train.gan import pretrain_from_config
from infaug.train.seeds import derive, rng

__all__ = ["learn_augmenter"]

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


def learn_augmenter(
    model: nn.Module,
    train: Data,
    validation: Data,
    *,
    unlabelled: Optional[Tensor] = None,
    damping: float = 0.01,
    gan_steps: Optional[int] = None,
    encoder_steps: Optional[int] = None,
    seed: int = 0,
    generator: Optional[Generator] = None,
    generator_config: GeneratorConfig = GeneratorConfig(),
    encoder_config: EncoderConfig = EncoderConfig(),
    ranges: AffineRanges = AffineRanges(),
) -> Augmenter:
    """Pre-trains G on the training (and unlabelled) images, then trains E by influence at the
    classifier's current weights, and returns both as an :class:`infaug.Augmenter`.

    Args:
        model: your trained classifier (last layer ``nn.Linear``); left unchanged.
        train, validation: (images (N, C, H, W) in [0, 1], labels (N,)) or DataLoaders of such batches.
        unlabelled: more images (M, C, H, W) for G's GAN.
        damping: the influence engine's damping (the L2 your last layer was trained with).
        gan_steps, encoder_steps: lengths of G's pre-training and E's training (default: the configs').
        generator: an already pre-trained G to reuse (then G's pre-training is skipped).
        generator_config, encoder_config: the settings of G, its pre-training, E and its training,
            as ``infaug run`` takes them (``infaug.config``). ranges: the random affine transforms
            whose flow fields G's flow critic takes as real.

    Under torchrun (``torch.distributed`` initialised, e.g. by ``infaug.distributed.setup()``,
    with P > 1 processes) every process passes the same data and gets the same Augmenter: G's
    pre-training draws ``batch_size / P`` images per process and averages the gradients, E trains
    in DistributedDataParallel on the rows ``rank::P`` of each batch, and the influence engine is
    fitted on each process's shard.
    """
    device = next(model.parameters()).device
    (train_x, train_y), validation = _tensors(train, "train", device), _tensors(validation, "validation", device)
    wrapped = _LastLayer(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the caller's RNG is left alone
        torch.manual_seed(derive(seed, "learn_augmenter"))
        return _learn(wrapped, train_x, train_y, validation, unlabelled, damping, gan_steps, encoder_steps,
                      rng(seed, "learn_augmenter"), generator, generator_config, encoder_config, ranges, seed)


def _learn(wrapped, train_x, train_y, validation, unlabelled, damping, gan_steps, encoder_steps, rng, generator,
           generator_config, encoder_config, ranges, seed) -> Augmenter:
    device = train_x.device
    local = distributed.rank_rng(seed, "learn_augmenter", rng)  # rng itself in one process
    _, c, h, w = train_x.shape
    g, e = generator_config, encoder_config
    if generator is None:
        generator = Generator(c, h, w, latent=g.latent, spatial_latent=g.spatial_latent, hidden=g.hidden, smooth=g.smooth).to(device)
        images = train_x if unlabelled is None else torch.cat([train_x, unlabelled.to(device)])
        pretrain_from_config(generator, images, g, ranges=ranges, rng=local, steps=gan_steps, seed=seed)
    generator.eval()
    engine = influence_engine(wrapped, (train_x, train_y), validation, damping=damping)
    encoder = Encoder(c, generator.latent, e.width, e.noise).to(device)
    train_encoder(encoder, generator, wrapped, engine, train_x, train_y, steps=e.steps if encoder_steps is None else encoder_steps,
                  batch_size=min(e.batch_size, len(train_y)), lr=e.lr, penalty=e.tau_penalty, rng=rng, kl=e.kl, clip=e.clip,
                  noise_rng=local)
    return Augmenter(generator, encoder)
