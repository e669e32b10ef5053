"""Augmentations expressed as parameters of the fused ``infaug.augment`` op.

The heuristic baseline (random compositions of rotation, translation, scaling, shear, brightness
and contrast, one global transform per image) and the random affine flows that G's flow critic
takes as real: both come from :func:`random_affine` with the same :class:`AffineRanges`.

Example:
    >>> import torch
    >>> from infaug.augmentations import AffineRanges, HeuristicAugmentation
    >>> heuristic = HeuristicAugmentation(AffineRanges())
    >>> heuristic(torch.rand(4, 1, 28, 28), torch.Generator().manual_seed(0)).shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

import infaug
from infaug.config import AffineRanges

__all__ = ["AffineRanges", "HeuristicAugmentation", "affine_fields", "random_affine", "random_colour"]


def _uniform(n: int, half_width: float, generator: Optional[torch.Generator], device) -> Tensor:
    return ((2 * torch.rand(n, generator=generator) - 1) * half_width).to(device)


def random_affine(
    n: int, ranges: AffineRanges, *, generator: Optional[torch.Generator] = None, device: torch.device | str = "cpu"
) -> Tensor:
    """(n, 2, 3) affine ``theta`` in ``affine_grid``'s convention (output to input coordinates,
    normalised to [-1, 1]): rotation @ shear @ scale, then a translation."""
    angle = _uniform(n, math.radians(ranges.rotation), generator, device)
    shear = _uniform(n, ranges.shear, generator, device)
    scale = 1 + _uniform(n, ranges.scale, generator, device)
    shift = torch.stack([_uniform(n, 2 * ranges.translation, generator, device) for _ in range(2)], 1)
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([cos, -sin, sin, cos], 1).view(n, 2, 2)
    shearing = torch.stack([torch.ones_like(shear), shear, torch.zeros_like(shear), torch.ones_like(shear)], 1).view(n, 2, 2)
    matrix = rotation @ shearing * scale.view(n, 1, 1)
    return torch.cat([matrix, shift.unsqueeze(2)], 2)


def affine_fields(theta: Tensor, height: int, width: int) -> Tuple[Tensor, Tensor]:
    """Constant per-pixel fields (theta_w (n, 4, H, W), theta_b (n, 2, H, W)) of affine ``theta`` (n, 2, 3)."""
    n = theta.shape[0]
    theta_w = theta[:, :, :2].reshape(n, 4, 1, 1).expand(n, 4, height, width).contiguous()
    theta_b = theta[:, :, 2].reshape(n, 2, 1, 1).expand(n, 2, height, width).contiguous()
    return theta_w, theta_b


def random_colour(
    n: int, channels: int, ranges: AffineRanges, *, generator: Optional[torch.Generator] = None, device="cpu"
) -> Tuple[Tensor, Tensor]:
    """(color_w (n, C, C), color_b (n, C)): a random contrast times the identity and a random brightness."""
    contrast = 1 + _uniform(n, ranges.contrast, generator, device)
    brightness = _uniform(n, ranges.brightness, generator, device)
    color_w = torch.eye(channels, device=device).expand(n, channels, channels) * contrast.view(n, 1, 1)
    return color_w.contiguous(), brightness.view(n, 1).expand(n, channels).contiguous()


class HeuristicAugmentation:
    """The heuristic baseline: one random global affine transform and colour change per image,
    through the fused op (``smooth=1``, so a global affine stays exactly affine)."""

    def __init__(self, ranges: AffineRanges) -> None:
        self.ranges = ranges.scaled()

    def __call__(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        n, c, h, w = x.shape
        theta_w, theta_b = affine_fields(random_affine(n, self.ranges, generator=generator, device=x.device).to(x.dtype), h, w)
        color_w, color_b = random_colour(n, c, self.ranges, generator=generator, device=x.device)
        out = infaug.augment(x, theta_w, theta_b, color_w.to(x.dtype), color_b.to(x.dtype), smooth=1)
        return out.clamp(0, 1)
