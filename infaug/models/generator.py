"""G, the transformation model: tau -> augmentation parameters.

tau (N, latent) is split in two: the spatial part Gs maps its share to a (6, H, W) map through
transposed convolutions (4 channels of theta_w, 2 of theta_b), plus one global value per channel
from a linear layer (the map's average, which alone is an affine transform, paper 4.1: a global
affine part is then as easy for G to make as a local one); the appearance part Ga maps the rest
to C*C + C values (color_w, color_b). Both are parametrised around the identity: their last
layers start at zero, and a zero output is the identity transform, so G starts as "no
augmentation". G never sees x; ``forward`` applies the parameters to x with the fused
``infaug.augment``.

Example:
    >>> import torch
    >>> from infaug.models import Generator
    >>> g = Generator(channels=1, height=28, width=28)
    >>> x = torch.rand(2, 1, 28, 28)
    >>> torch.equal(g(x, g.sample_latent(2)), x)  # zero-initialised: the identity
    True
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

import infaug
from infaug.flow import base_grid, displacement

__all__ = ["Generator", "TranslationGenerator", "sampling_field"]

Params = Tuple[Tensor, Tensor, Tensor, Tensor]


class Generator(nn.Module):
    """G = (Gs, Ga) for (C, H, W) images.

    Args:
        channels, height, width: the image shape. latent: size of tau (the prior is N(0, I)).
        spatial_latent: how much of tau feeds Gs (the rest feeds Ga). hidden: channels of Gs.
        smooth: box size of the flow's smoothing in ``augment``. padding_mode: as grid_sample's.
    """

    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        *,
        latent: int = 128,
        spatial_latent: int = 96,
        hidden: int = 32,
        smooth: int = 3,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        if not 0 < spatial_latent < latent:
            raise ValueError(f"spatial_latent must lie in (0, latent = {latent}), got {spatial_latent}")
        self.channels, self.height, self.width = channels, height, width
        self.latent, self.spatial_latent = latent, spatial_latent
        self.smooth, self.padding_mode = smooth, padding_mode
        self.start = (-(-height // 4), -(-width // 4))  # two stride-2 transposed convolutions reach >= (H, W)
        self.spatial_in = nn.Linear(spatial_latent, 2 * hidden * self.start[0] * self.start[1])
        self.spatial = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(2 * hidden, hidden, 4, 2, 1),  # (N, h, 2 h0, 2 w0)
            nn.ReLU(),
            nn.ConvTranspose2d(hidden, hidden, 4, 2, 1),  # (N, h, 4 h0, 4 w0)
            nn.ReLU(),
            nn.Conv2d(hidden, 6, 3, 1, 1),  # (N, 6, 4 h0, 4 w0), cropped to (H, W)
        )
        self.spatial_global = nn.Linear(spatial_latent, 6)  # the affine part, broadcast over (H, W)
        self.appearance = nn.Sequential(
            nn.Linear(latent - spatial_latent, 64), nn.ReLU(), nn.Linear(64, channels * channels + channels)
        )
        for last in (self.spatial[-1], self.spatial_global, self.appearance[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def sample_latent(
        self, n: int, *, generator: Optional[torch.Generator] = None, device: Optional[torch.device] = None
    ) -> Tensor:
        """tau (n, latent) from the prior N(0, I), in G's dtype, drawn on ``generator``'s device."""
        weight = self.spatial_in.weight
        return _normal((n, self.latent), generator, weight.dtype, device or weight.device)

    def transform_parameters(self, tau: Tensor) -> Params:
        """(theta_w (N, 4, H, W), theta_b (N, 2, H, W), color_w (N, C, C), color_b (N, C)) of tau (N, latent)."""
        n, c = tau.shape[0], self.channels
        tau_s, tau_a = tau[:, : self.spatial_latent], tau[:, self.spatial_latent :]
        maps = self.spatial(self.spatial_in(tau_s).view(n, -1, *self.start))[:, :, : self.height, : self.width]
        maps = maps + self.spatial_global(tau_s).view(n, 6, 1, 1)
        identity = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=maps.dtype, device=maps.device).view(1, 4, 1, 1)
        theta_w = (maps[:, :4] + identity).contiguous()
        theta_b = maps[:, 4:].contiguous()
        colour = self.appearance(tau_a)
        color_w = colour[:, : c * c].view(n, c, c) + torch.eye(c, dtype=colour.dtype, device=colour.device)
        color_b = colour[:, c * c :].contiguous()
        return theta_w, theta_b, color_w.contiguous(), color_b

    def apply_parameters(self, x: Tensor, params: Params, *, ops=infaug) -> Tensor:
        """x~ = augment(x, *params) clamped to [0, 1], the range of images. ``ops``: the module whose
        ``augment`` is used (the fused op, or ``infaug.reference``)."""
        return ops.augment(x, *params, smooth=self.smooth, padding_mode=self.padding_mode).clamp(0, 1)

    def forward(self, x: Tensor, tau: Tensor, *, ops=infaug, return_params: bool = False):
        """x~ = augment(x, G(tau)) in [0, 1]: x (N, C, H, W), tau (N, latent) -> (N, C, H, W); with
        ``return_params`` also the parameters (theta_w, theta_b, color_w, color_b) it applied."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.channels, self.height, self.width):
            raise ValueError(f"G: x must have shape (N, {self.channels}, {self.height}, {self.width}), got {tuple(x.shape)}")
        if tau.shape != (x.shape[0], self.latent):
            raise ValueError(f"G: tau must have shape ({x.shape[0]}, {self.latent}), got {tuple(tau.shape)}")
        params = self.transform_parameters(tau)
        out = self.apply_parameters(x, params, ops=ops)
        return (out, params) if return_params else out

    def sampling_field(self, tau: Tensor) -> Tensor:
        """The smoothed sampling points s (N, 2, H, W) of G(tau), in normalised (x, y) coordinates:
        what the flow critic sees."""
        theta_w, theta_b, _, _ = self.transform_parameters(tau)
        return sampling_field(theta_w, theta_b, self.smooth)


def sampling_field(theta_w: Tensor, theta_b: Tensor, smooth: int) -> Tensor:
    """s = base grid + smoothed displacement, (N, 2, H, W)."""
    _, _, h, w = theta_w.shape
    base = base_grid(h, w, align_corners=False, dtype=theta_w.dtype, device=theta_w.device)
    return base + displacement(theta_w, theta_b, smooth=smooth)


class TranslationGenerator(nn.Module):
    """The toy example's transformation model (paper 5.1): tau (N, 2) is a translation of points
    (N, 2), x~ = x + scale * tau. It has no parameters to pre-train."""

    def __init__(self, scale: float = 0.5) -> None:
        super().__init__()
        self.latent = 2
        self.scale = scale

    def sample_latent(
        self, n: int, *, generator: Optional[torch.Generator] = None, device: Optional[torch.device] = None
    ) -> Tensor:
        return _normal((n, 2), generator, torch.float32, device or "cpu")

    def forward(self, x: Tensor, tau: Tensor, *, ops=None) -> Tensor:
        return x + self.scale * tau


def _normal(shape: tuple, generator: Optional[torch.Generator], dtype: torch.dtype, device) -> Tensor:
    """N(0, 1) samples drawn on ``generator``'s device (CPU or CUDA generators alike), moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, dtype=dtype, device=where).to(device)
