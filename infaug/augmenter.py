"""``infaug.Augmenter``: the learned augmentation as one ``nn.Module`` for any training loop.

It holds G and, for a learned augmentation, E: ``augmenter(x)`` draws tau = E(x) (E's mean plus
its noise), or tau from G's prior when there is no E, and returns G(x, tau) through the fused
``infaug.augment``. ``save`` writes both networks and their constructor arguments to one file
(atomically, with the SHA-256 of its contents inside); ``Augmenter.load`` rebuilds it without the
rest of the system, and refuses a damaged file naming it
(:class:`~infaug.util.files.CorruptFileError`).

Example:
    >>> import torch, infaug
    >>> from infaug.models import Encoder, Generator
    >>> augmenter = infaug.Augmenter(Generator(1, 28, 28), Encoder(1))
    >>> x = torch.rand(4, 1, 28, 28)
    >>> y = augmenter(x, generator=torch.Generator().manual_seed(0))
    >>> y.shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from infaug.util.atomic import atomic_write
from infaug.util.files import CorruptFileError, load_checked, save_checked
from infaug.models import Encoder, Generator

__all__ = ["Augmenter"]

FORMAT = "infaug.Augmenter/1"


class Augmenter(nn.Module):
    """x (N, C, H, W) in [0, 1] -> augmented x (N, C, H, W), clamped to [0, 1].

    Args:
        generator: G (``infaug.models.Generator``). encoder: E (``infaug.models.Encoder``) or None
            to sample tau from G's prior.
        temperature: without an encoder, tau is drawn from N(0, temperature^2 I) (1: G's prior).
    """

    def __init__(self, generator: Generator, encoder: Optional[Encoder] = None, temperature: float = 1.0) -> None:
        super().__init__()
        if not (isinstance(temperature, (int, float)) and 0 < temperature < float("inf")):
            raise ValueError(f"Augmenter: temperature must be a finite number > 0, got {temperature!r}")
        self.generator = generator
        self.encoder = encoder
        self.temperature = float(temperature)

    def latent(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """tau (N, latent) for the batch x."""
        if self.encoder is None:
            tau = self.generator.sample_latent(x.shape[0], generator=generator, device=x.device)
            return tau if self.temperature == 1.0 else self.temperature * tau
        return self.encoder(x, generator=generator)

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None, *, return_params: bool = False):
        """Augments x; with ``return_params`` also returns (theta_w, theta_b, color_w, color_b)."""
        expected = (self.generator.channels, self.generator.height, self.generator.width)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"Augmenter: x must have shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        params = self.generator.transform_parameters(self.latent(x, generator))
        out = self.generator.apply_parameters(x, params)
        return (out, params) if return_params else out

    # ---- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Writes G, E and their constructor arguments to ``path`` (a temporary file, then a rename)."""
        g = self.generator
        payload = {
            "format": FORMAT,
            "temperature": self.temperature,
            "generator": {
                "args": dict(channels=g.channels, height=g.height, width=g.width, latent=g.latent,
                             spatial_latent=g.spatial_latent, hidden=g.spatial[1].out_channels,
                             smooth=g.smooth, padding_mode=g.padding_mode),
                "state": g.state_dict(),
            },
            "encoder": None
            if self.encoder is None
            else {
                "args": dict(in_channels=self.encoder.net[0].in_channels, latent=self.encoder.latent,
                             width=self.encoder.net[0].out_channels, noise=self.encoder.noise),
                "state": self.encoder.state_dict(),
            },
        }
        return atomic_write(path, lambda temporary: save_checked(payload, temporary))

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "Augmenter":
        """The Augmenter saved at ``path``, on ``map_location``, in eval mode.

        Raises ``FileNotFoundError`` for a missing file and
        :class:`~infaug.util.files.CorruptFileError` (a ``ValueError``) naming ``path`` for one that
        is truncated or altered, or is no Augmenter file."""
        payload = load_checked(path, map_location=map_location)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise CorruptFileError(f"{path} is not an infaug Augmenter file (expected format {FORMAT!r}, found {found!r})")
        try:
            generator = Generator(**payload["generator"]["args"])
            generator.load_state_dict(payload["generator"]["state"])
            encoder = None
            if payload["encoder"] is not None:
                encoder = Encoder(**payload["encoder"]["args"])
                encoder.load_state_dict(payload["encoder"]["state"])
        except (KeyError, TypeError, RuntimeError) as error:
            raise CorruptFileError(f"{path}: an infaug Augmenter file whose networks cannot be rebuilt "
                                   f"({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None
        return cls(generator, encoder, temperature=payload.get("temperature", 1.0)).to(map_location).eval()
