"""Augmentations expressed as parameters of the fused ``infaug.augment`` op.

The heuristic baseline (random compositions of rotation, translation, scaling, shear, brightness
and contrast, one global transform per image) and the random affine flows that G's flow critic
takes as real: both come from :func:`random_affine` with the same :class:`AffineRanges`. The
``elastic`` baseline (:class:`ElasticAugmentation`) adds to the heuristic's affine transform the
smoothed random displacement field of Simard et al. (2003), :func:`elastic_field`.

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

__all__ = ["AffineRanges", "ElasticAugmentation", "HeuristicAugmentation", "affine_fields", "elastic_field", "gaussian_kernel",
           "random_affine", "random_colour"]


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


def gaussian_kernel(sigma: float, radius: int) -> Tensor:
    """The 1-D Gaussian of standard deviation ``sigma`` on [-radius, radius], normalised to sum 1 (float64)."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def elastic_field(n: int, height: int, width: int, *, alpha: float, sigma: float,
                  generator: Optional[torch.Generator] = None, device: torch.device | str = "cpu") -> Tensor:
    """(n, 2, H, W) random displacements in pixels (channel 0 horizontal, 1 vertical), as Simard et
    al. (2003) draw them: a field uniform in [-1, 1] per pixel and axis, smoothed by a Gaussian of
    standard deviation ``sigma`` pixels (separable, truncated at 3 sigma, reflecting at the
    borders), times ``alpha`` pixels. Its mean is zero; away from the borders each entry's standard
    deviation is ``alpha * sqrt(sum(k^2) / 3)`` for the 2-D kernel k (about ``alpha / (sqrt(12 pi)
    sigma)``) and its correlation at a distance of d pixels ``exp(-d^2 / (4 sigma^2))``."""
    field = 2 * torch.rand(n * 2, 1, height, width, generator=generator, dtype=torch.float64) - 1
    if sigma > 0:
        radius = max(1, min(math.ceil(3 * sigma), height - 1, width - 1))
        kernel = gaussian_kernel(sigma, radius)
        field = torch.nn.functional.pad(field, (radius, radius, 0, 0), mode="reflect")
        field = torch.nn.functional.conv2d(field, kernel.view(1, 1, 1, -1))
        field = torch.nn.functional.pad(field, (0, 0, radius, radius), mode="reflect")
        field = torch.nn.functional.conv2d(field, kernel.view(1, 1, -1, 1))
    return (alpha * field).view(n, 2, height, width).to(device=device, dtype=torch.float32)


class ElasticAugmentation:
    """The ``elastic`` baseline: the heuristic's random affine transform and colour change (drawn
    from ``ranges.scaled()``, in the heuristic's order), with the sampling grid further displaced
    by :func:`elastic_field` (``alpha``, ``sigma`` in pixels), through the fused op with
    ``smooth=1``: the displacement d(p) of output pixel p moves the point it samples from A p + t
    to A p + t + d(p). With zero ranges and ``alpha = 0`` it is the identity; with ``alpha = 0`` it
    draws exactly what :class:`HeuristicAugmentation` draws from the same ranges and generator."""

    def __init__(self, ranges: AffineRanges, *, alpha: float, sigma: float) -> None:
        if not (math.isfinite(alpha) and alpha >= 0 and math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"ElasticAugmentation: alpha and sigma must be finite numbers >= 0, got alpha={alpha!r}, sigma={sigma!r}")
        self.ranges, self.alpha, self.sigma = ranges.scaled(), alpha, sigma

    def __call__(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        n, c, h, w = x.shape
        theta_w, theta_b = affine_fields(random_affine(n, self.ranges, generator=generator, device=x.device).to(x.dtype), h, w)
        color_w, color_b = random_colour(n, c, self.ranges, generator=generator, device=x.device)
        if self.alpha > 0:
            field = elastic_field(n, h, w, alpha=self.alpha, sigma=self.sigma, generator=generator, device=x.device)
            pixel = torch.tensor([2.0 / w, 2.0 / h], device=x.device).view(1, 2, 1, 1)  # grid units per pixel
            theta_b = theta_b + (field * pixel).to(x.dtype)
        out = infaug.augment(x, theta_w, theta_b, color_w.to(x.dtype), color_b.to(x.dtype), smooth=1)
        return out.clamp(0, 1)
