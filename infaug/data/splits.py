"""The data protocol: stratified, seeded splits, recorded so a run can be audited.

From a pool of labelled training data: a test split (only where the dataset has no official one),
a labelled subset with the validation split carved from it, and unlabelled images (G's GAN only).
A share of the labelled training samples is held out from E's training, to judge on samples E
never saw whether its augmentations have the predicted influence.

Example:
    >>> import torch
    >>> from infaug.data.splits import make_splits
    >>> labels = torch.arange(10).repeat(100)   # 1000 samples, 10 classes
    >>> s = make_splits(labels, labelled=100, validation=20, test=200, seed=0)
    >>> len(s.train), len(s.validation), len(s.test), len(s.unlabelled)
    (80, 20, 200, 700)
    >>> torch.bincount(labels[s.validation]).tolist()
    [2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["Splits", "make_splits", "stratified_sample"]


def stratified_sample(labels: Tensor, pool: Tensor, count: int, generator: torch.Generator) -> Tuple[Tensor, Tensor]:
    """Draws ``count`` of the indices ``pool`` with class proportions as in the pool (largest
    remainders), returns (chosen, rest), each sorted."""
    if not 0 <= count <= len(pool):
        raise ValueError(f"cannot draw {count} samples from a pool of {len(pool)}")
    classes, sizes = torch.unique(labels[pool], return_counts=True)
    exact = sizes.double() * count / len(pool)
    quota = exact.floor().long()
    remainder = count - int(quota.sum())
    if remainder:
        order = torch.argsort(exact - quota, descending=True, stable=True)
        quota[order[:remainder]] += 1
    chosen = []
    for cls, take in zip(classes.tolist(), quota.tolist()):
        members = pool[labels[pool] == cls]
        chosen.append(members[torch.randperm(len(members), generator=generator)[:take]])
    picked = torch.sort(torch.cat(chosen)).values if chosen else pool[:0]
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[picked] = False
    rest = pool[keep[pool]]
    return picked, torch.sort(rest).values


@dataclass(frozen=True)
class Splits:
    """Indices into the pool of training data (``test`` is None when the official test set is used)."""

    train: Tensor  # labelled, for F
    validation: Tensor  # labelled, for s_val and model selection
    unlabelled: Tensor  # G's GAN only
    test: Optional[Tensor]
    encoder_train: Tensor  # the part of ``train`` E trains on
    encoder_holdout: Tensor  # the part of ``train`` E never sees

    def record(self) -> dict:
        """Counts and a SHA-256 of every index list (what ``metrics.json`` keeps)."""
        out = {}
        for name in ("train", "validation", "unlabelled", "test", "encoder_train", "encoder_holdout"):
            indices = getattr(self, name)
            if indices is None:
                out[name] = {"count": None, "sha256": None, "source": "the official test set"}
                continue
            digest = hashlib.sha256(indices.to(torch.int64).numpy().tobytes()).hexdigest()
            out[name] = {"count": len(indices), "sha256": digest}
        return out


def make_splits(
    labels: Tensor,
    *,
    labelled: int,
    validation: int,
    test: int = 0,
    unlabelled: int = -1,
    holdout: float = 0.25,
    seed: int = 0,
) -> Splits:
    """Stratified splits of a pool with ``labels`` (N,): ``test`` first (0: the dataset has its own),
    then ``labelled`` (``validation`` of them for validation), then ``unlabelled`` of the rest (-1: all)."""
    if validation >= labelled:
        raise ValueError(f"validation ({validation}) must be smaller than labelled ({labelled})")
    if test + labelled > len(labels):
        raise ValueError(f"test ({test}) + labelled ({labelled}) exceed the {len(labels)} samples available")
    generator = torch.Generator().manual_seed(seed)
    pool = torch.arange(len(labels))
    test_indices = None
    if test:
        test_indices, pool = stratified_sample(labels, pool, test, generator)
    chosen, pool = stratified_sample(labels, pool, labelled, generator)
    val, train = stratified_sample(labels, chosen, validation, generator)
    if unlabelled >= 0:
        pool = torch.sort(pool[torch.randperm(len(pool), generator=generator)[:unlabelled]]).values
    holdout_indices, encoder_train = stratified_sample(labels, train, round(holdout * len(train)), generator)
    if len(encoder_train) == 0:
        raise ValueError(f"holdout ({holdout}) leaves none of the {len(train)} labelled training samples for E to train on")
    return Splits(train, val, pool, test_indices, encoder_train, holdout_indices)
