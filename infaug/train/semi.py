"""Semi-supervised training of F on the unlabelled images, FixMatch-style (Sohn et al. 2020).

Each of F's steps takes, beside its labelled batch (originals and the method's augmentations),
``semi.ratio`` times as many unlabelled images u. For each, a *weak view* (a random translation by
whole pixels, :func:`weak_view`) gives F's prediction p, computed without gradient and with F in
eval mode; where max p reaches ``semi.threshold`` its argmax is u's pseudo-label, and the
cross-entropy of F on the *strong view* (the method's augmentation of u; for ``none``, the weak view
itself) against it is added to the loss with weight ``semi.weight``:

    loss = CE(labelled) + (damping / 2) |head|^2 + weight * mean_u [max p_u >= threshold] CE(F(strong_u), argmax p_u)

The mean runs over every unlabelled image of the step, masked ones included, as in FixMatch. The
strong views go through F in the same forward pass as the labelled batch (one batch-norm batch).
Every method runs this same code; only its augmentation differs.

The unlabelled images F trains on are the task's unlabelled pool less the rows held out for E's
target (:func:`split_unlabelled`), so that E is never judged on images F has fitted.

Example (the loss of a known case):
    >>> import torch
    >>> from infaug.train.semi import consistency_loss
    >>> weak = torch.tensor([[4.0, 0.0], [0.0, 0.1]])     # confident about class 0; unsure
    >>> strong = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    >>> loss, mask = consistency_loss(strong, weak.softmax(1), threshold=0.9)
    >>> mask.tolist(), round(float(loss), 4)              # (log 2 + 0) / 2: the unsure row counts as 0
    ([True, False], 0.3466)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

import infaug
from infaug.augmentations import affine_fields
from infaug.util.seeds import derive

__all__ = ["Unlabelled", "consistency_loss", "random_shifts", "split_unlabelled", "weak_view"]


def consistency_loss(strong_logits: Tensor, weak_probs: Tensor, threshold: float, *, reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """(loss, mask): the cross-entropy of ``strong_logits`` (U, K) against the argmax of
    ``weak_probs`` (U, K) where its maximum is at least ``threshold`` (``mask``, (U,) bool), zero
    elsewhere; averaged over all U rows (``reduction="mean"``), summed (``"sum"``) or per row
    (``"none"``). No gradient flows into ``weak_probs``."""
    if strong_logits.shape != weak_probs.shape or strong_logits.dim() != 2:
        raise ValueError(f"consistency_loss: strong_logits and weak_probs must both have shape (U, K), got "
                         f"{tuple(strong_logits.shape)} and {tuple(weak_probs.shape)}")
    confidence, pseudo = weak_probs.detach().max(1)
    mask = confidence >= threshold
    per_row = F.cross_entropy(strong_logits, pseudo, reduction="none") * mask.to(strong_logits.dtype)
    if reduction == "none":
        return per_row, mask
    if reduction == "sum":
        return per_row.sum(), mask
    if reduction == "mean":
        return per_row.mean() if len(per_row) else per_row.sum(), mask
    raise ValueError(f"consistency_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def random_shifts(n: int, height: int, width: int, translation: float, generator: Optional[torch.Generator]) -> Tensor:
    """(n, 2) random whole-pixel shifts (horizontal, vertical), each uniform in [-m, m] with
    m = int(translation * width) (height for the vertical)."""
    most = (int(translation * width), int(translation * height))
    return torch.stack([torch.randint(-m, m + 1, (n,), generator=generator) for m in most], 1)


def weak_view(x: Tensor, shifts: Tensor) -> Tensor:
    """``x`` (N, C, H, W), image i moved by ``shifts[i]`` = (dx, dy) whole pixels (the content
    moves right and down for positive values), the border filled with zeros, by infaug's warp:
    FixMatch's weak view for digits (no flip). All-zero shifts return ``x`` itself."""
    n, _, h, w = x.shape
    if n == 0 or not bool(shifts.any()):
        return x
    grid = -shifts.to(x.dtype) * torch.tensor([2.0 / w, 2.0 / h], dtype=x.dtype)  # where each output pixel samples from
    theta = torch.cat([torch.eye(2, dtype=x.dtype).expand(n, 2, 2), grid.unsqueeze(2)], 2).to(x.device)  # a pure translation
    return infaug.warp(x, *affine_fields(theta, h, w), smooth=1)


@dataclass
class Unlabelled:
    """What F's semi-supervised steps draw on: ``images`` (the unlabelled images F may train on),
    ``ratio`` of them per labelled image in each step, the confidence ``threshold``, the loss's
    ``weight``, the weak view's ``translation``, and ``generator``, which draws the images of each
    step (uniformly, with replacement) and their weak views."""

    images: Tensor
    ratio: int
    threshold: float
    weight: float
    translation: float
    generator: torch.Generator

    def __post_init__(self) -> None:
        if self.ratio < 1:
            raise ValueError(f"Unlabelled: ratio must be >= 1, got {self.ratio}")
        if len(self.images) == 0:
            raise ValueError("Unlabelled: no unlabelled images to train F on (semi.ratio > 0 needs some: data.unlabelled, "
                             "and fewer held out by encoder.target_size)")

    def draw(self, count: int) -> tuple[Tensor, Tensor]:
        """(rows (count,) of ``images``, their weak views' shifts (count, 2)) for one step: the
        same on every rank, which each takes its part of."""
        rows = torch.randint(len(self.images), (count,), generator=self.generator)
        h, w = self.images.shape[-2:]
        return rows.to(self.images.device), random_shifts(count, h, w, self.translation, self.generator)


def split_unlabelled(count: int, held_out: int, seed: int) -> tuple[Tensor, Tensor]:
    """(the rows of an unlabelled pool of ``count`` images F may train on, the ``held_out`` rows kept
    for E's target): a seeded permutation, the held-out rows first; disjoint, together all rows."""
    if not 0 <= held_out <= count:
        raise ValueError(f"encoder.target_size = {held_out} must be in [0, {count}] (the unlabelled images there are)")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(derive(seed, "target")))
    return order[held_out:].sort().values, order[:held_out].sort().values
