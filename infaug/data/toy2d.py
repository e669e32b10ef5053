"""The toy example of the paper (5.1): two classes of 2-D points, two interleaved half moons.

Example:
    >>> from infaug.data.toy2d import toy2d
    >>> points, labels = toy2d(100, seed=0)
    >>> points.shape, labels.bincount().tolist()
    (torch.Size([100, 2]), [50, 50])
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

__all__ = ["toy2d"]


def toy2d(n: int, *, seed: int = 0, noise: float = 0.15) -> Tuple[Tensor, Tensor]:
    """(points (n, 2) float32, labels (n,) int64): class 0 on the upper moon, class 1 on the lower."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.stack([angle.cos(), angle.sin()], 1)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], 1)
    points = torch.where(labels[:, None] == 0, upper, lower)
    points = points + noise * torch.randn(n, 2, generator=generator)
    order = torch.randperm(n, generator=generator)
    return points[order].float(), labels[order]
