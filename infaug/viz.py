"""Pictures of what infaug does: image grids written as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from torch import Tensor

from infaug.util.atomic import atomic_write


def image_grid(images: Tensor, *, columns: int = 8, padding: int = 2) -> np.ndarray:
    """Tiles (N, C, H, W) images with values in [0, 1] (C = 1 or 3) into one (rows, cols[, 3]) uint8 array."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    rows = max(1, -(-n // columns))
    canvas = torch.ones(c, rows * (h + padding) + padding, columns * (w + padding) + padding)
    for k, image in enumerate(images.detach().float().cpu().clamp(0, 1)):
        top, left = padding + (k // columns) * (h + padding), padding + (k % columns) * (w + padding)
        canvas[:, top : top + h, left : left + w] = image
    pixels = (canvas * 255).round().byte().permute(1, 2, 0).numpy()
    return pixels[..., 0] if c == 1 else pixels


def save_grid(images: Tensor, path: str | Path, *, columns: int = 8, scale: int = 3) -> Path:
    """Writes :func:`image_grid` of ``images`` to ``path`` (PNG), enlarged ``scale`` times."""
    picture = Image.fromarray(image_grid(images, columns=columns))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return atomic_write(path, lambda temporary: picture.save(temporary, format="PNG"))


def save_figure(figure, path: str | Path, dpi: int = 100) -> Path:
    """Writes a matplotlib figure as PNG, atomically (a reader never sees half a file)."""
    return atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=dpi))
