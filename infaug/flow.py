"""The per-pixel affine flow's geometry in plain torch: the base grid of
``affine_grid`` and the smoothed displacement. G's sampling field, the GAN's affine prior and the
flow-field pictures use them; the fused ``warp``/``augment`` kernels compute the same inside."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["base_grid", "displacement"]


def base_grid(
    height: int, width: int, *, align_corners: bool, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """The base grid of ``affine_grid`` in (x, y) order.

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
    """The smoothed displacement of the per-pixel affine flow.

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
