"""The two critics of G's WGAN-GP pre-training: one on images, one on flow fields.

A WGAN critic has no normalisation across the batch (the gradient penalty is per sample), so the
layers are plain strided convolutions with leaky ReLUs.

Example:
    >>> import torch
    >>> from infaug.models import Critic
    >>> Critic(in_channels=2)(torch.rand(3, 2, 28, 28)).shape
    torch.Size([3])
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["Critic"]


class Critic(nn.Module):
    """A scalar score per sample of (N, in_channels, H, W): images (C channels) or sampling fields (2)."""

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, 2, 1),  # (N, w, H/2, W/2)
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),  # (N, 2w, H/4, W/4)
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1),  # (N, 4w, H/8, W/8)
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)
