"""The pure-torch definitions of infaug's operators: the source of truth for the tests and
the baseline of the benchmarks. Written as plainly as the method page (docs/method.md) states them, and as tightly as plain
torch allows, so that a speed ratio against them is honest.

Example:
    >>> import torch
    >>> from infaug import reference
    >>> x = torch.rand(2, 3, 8, 8)
    >>> theta_w = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 4, 1, 1).expand(2, 4, 8, 8)
    >>> theta_b = torch.zeros(2, 2, 8, 8)
    >>> torch.allclose(reference.warp(x, theta_w, theta_b), x, atol=1e-6)
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from infaug.flow import base_grid, displacement  # the flow's grid and displacement, shared with the runtime

__all__ = ["augment", "base_grid", "displacement", "influence", "influence_per_sample", "warp"]


def warp(
    x: Tensor,
    theta_w: Tensor,
    theta_b: Tensor,
    *,
    smooth: int = 3,
    align_corners: bool = False,
    padding_mode: str = "zeros",
) -> Tensor:
    """Reference of :func:`infaug.warp`: ``grid_sample(x, base + smoothed displacement)``."""
    height, width = x.shape[-2:]
    base = base_grid(height, width, align_corners=align_corners, dtype=x.dtype, device=x.device)
    points = base + displacement(theta_w, theta_b, smooth=smooth, align_corners=align_corners)
    return F.grid_sample(
        x, points.permute(0, 2, 3, 1), mode="bilinear", padding_mode=padding_mode, align_corners=align_corners
    )


def augment(
    x: Tensor,
    theta_w: Tensor,
    theta_b: Tensor,
    color_w: Tensor,
    color_b: Tensor,
    *,
    smooth: int = 3,
    align_corners: bool = False,
    padding_mode: str = "zeros",
) -> Tensor:
    """Reference of :func:`infaug.augment`: ``color_w @ warp(x) + color_b`` per image."""
    y = warp(x, theta_w, theta_b, smooth=smooth, align_corners=align_corners, padding_mode=padding_mode)
    return torch.baddbmm(color_b.unsqueeze(2), color_w, y.flatten(2)).view_as(y)


def influence(
    features: Tensor, labels: Tensor, weight: Tensor, bias: Tensor | None, s_weight: Tensor, s_bias: Tensor | None
) -> Tensor:
    """Reference of :func:`infaug.influence`: the closed form in torch ops."""
    probabilities = torch.softmax(F.linear(features, weight, bias), dim=1)
    residual = probabilities - F.one_hot(labels, weight.shape[0]).to(features.dtype)
    projection = F.linear(features, s_weight, s_bias)
    return -(residual * projection).sum(1)


def influence_per_sample(
    features: Tensor, labels: Tensor, weight: Tensor, bias: Tensor | None, s_weight: Tensor, s_bias: Tensor | None
) -> Tensor:
    """The same scores from materialised per-sample gradients (N, K, D) of the cross-entropy: what
    influence libraries do, and what the fused op avoids. For the benchmark and tests."""
    probabilities = torch.softmax(F.linear(features, weight, bias), dim=1)
    residual = probabilities - F.one_hot(labels, weight.shape[0]).to(features.dtype)
    grad_weight = residual[:, :, None] * features[:, None, :]  # (N, K, D)
    scores = -(grad_weight * s_weight).sum((1, 2))
    if s_bias is not None:
        scores = scores - residual @ s_bias
    return scores
