"""The pure-torch definitions of infaug's operators (SPEC 1): the source of truth for the tests and
the baseline of the benchmarks. Written as plainly as the SPEC states them, and as tightly as plain
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

__all__ = ["augment", "base_grid", "displacement", "influence", "influence_per_sample", "warp"]


def base_grid(
    height: int, width: int, *, align_corners: bool, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """The base grid of ``affine_grid`` in (x, y) order (SPEC 1.1 step 1).

    Returns:
        (2, H, W): ``[0, i, j] = u_j`` and ``[1, i, j] = v_i``, where
        ``u_j = (2j + 1) / W - 1`` (or ``2j / (W - 1) - 1`` with ``align_corners``).
    """

    def axis(size: int) -> Tensor:
        index = torch.arange(size, dtype=dtype, device=device)
        if align_corners:
            return 2 * index / (size - 1) - 1 if size > 1 else torch.zeros_like(index)
        return (2 * index + 1) / size - 1

    u, v = axis(width), axis(height)
    return torch.stack(torch.broadcast_tensors(u[None, :], v[:, None]))


def displacement(theta_w: Tensor, theta_b: Tensor, *, smooth: int = 3, align_corners: bool = False) -> Tensor:
    """The smoothed displacement of the per-pixel affine flow (SPEC 1.1 steps 2-3).

    Args:
        theta_w: (N, 4, H, W), the per-pixel matrix ``[[a, b], [c, d]]`` as channels (a, b, c, d).
        theta_b: (N, 2, H, W), the per-pixel bias (e, f).

    Returns:
        (N, 2, H, W): ``avg_pool2d(flow - base, smooth)`` with ``count_include_pad=False``.
    """
    n, _, height, width = theta_w.shape
    base = base_grid(height, width, align_corners=align_corners, dtype=theta_w.dtype, device=theta_w.device)
    # Both coordinates in one broadcast: [n, r, k] * base[k], summed over k, is row r of A @ (u, v).
    flow = (theta_w.view(n, 2, 2, height, width) * base).sum(2) + theta_b
    shift = flow - base
    if smooth > 1:
        shift = F.avg_pool2d(shift, smooth, stride=1, padding=smooth // 2, count_include_pad=False)
    return shift


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
    """Reference of :func:`infaug.augment`: ``color_w @ warp(x) + color_b`` per image (SPEC 1.2)."""
    y = warp(x, theta_w, theta_b, smooth=smooth, align_corners=align_corners, padding_mode=padding_mode)
    return torch.baddbmm(color_b.unsqueeze(2), color_w, y.flatten(2)).view_as(y)


def influence(
    features: Tensor, labels: Tensor, weight: Tensor, bias: Tensor | None, s_weight: Tensor, s_bias: Tensor | None
) -> Tensor:
    """Reference of :func:`infaug.influence`: the closed form in torch ops (SPEC 1.3)."""
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
