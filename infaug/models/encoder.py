"""E, the encoder: from an image x to the latent tau that G turns into its augmentation.

E predicts a mean mu(x) and adds noise of a fixed scale, tau = mu(x) + noise * eps with eps ~ N(0, I):
one image yields many augmentations, and influence shapes the distribution E samples from rather
than one augmentation per image. The mean's last layer starts at zero, so an untrained E with
``noise=1`` is exactly G's prior (the ``random_g`` baseline) and training moves it from there.

Example:
    >>> import torch
    >>> from infaug.models import Encoder
    >>> e = Encoder(in_channels=1, latent=128)
    >>> e(torch.rand(2, 1, 28, 28), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 128])
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from infaug.models.generator import _normal

__all__ = ["Encoder", "PointEncoder"]


class _Noisy(nn.Module):
    """tau = mean(x) + noise * eps (see the module docstring)."""

    latent: int
    noise: float

    def mean(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None, *, return_mean: bool = False):
        """tau (N, latent); with ``return_mean`` also the mean mu(x) (N, latent)."""
        mu = self.mean(x)
        tau = mu
        if self.noise != 0:
            tau = mu + self.noise * _normal(mu.shape, generator, mu.dtype, mu.device)
        return (tau, mu) if return_mean else tau


class Encoder(_Noisy):
    """Four-layer CNN: x (N, C, H, W) -> tau (N, latent)."""

    def __init__(self, in_channels: int, latent: int = 128, width: int = 32, noise: float = 1.0) -> None:
        super().__init__()
        self.latent, self.noise = latent, noise
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 2, 1),  # (N, w, H/2, W/2)
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1),  # (N, 2w, H/4, W/4)
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, 2, 1),  # (N, 2w, H/8, W/8)
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * width, latent),  # the fourth layer, 1 x 1
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)


class PointEncoder(_Noisy):
    """The toy example's E: points (N, 2) -> tau (N, latent) through a small MLP."""

    def __init__(self, in_features: int = 2, latent: int = 2, hidden: int = 32, noise: float = 1.0) -> None:
        super().__init__()
        self.latent, self.noise = latent, noise
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, latent))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
