"""Seeds of the parts of a run, derived from the run's seed so that no two parts share a stream.

``torch.manual_seed(1)`` and ``torch.Generator().manual_seed(1)`` give the same numbers, so seeding
F's initialisation with ``seed`` and its batch order with ``seed + 1`` would make seed 0's batches
seed 1's initialisation. Each part takes ``derive(seed, "its name")`` instead.

Example:
    >>> from infaug.util.seeds import derive
    >>> derive(0, "batches") != derive(1, "batches") != derive(0, "F")
    True
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["derive", "rng"]


def derive(seed: int, part: str) -> int:
    """A 63-bit seed for ``part`` of the run with ``seed``."""
    digest = hashlib.sha256(f"{int(seed)}/{part}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def rng(seed: int, part: str) -> torch.Generator:
    """A CPU generator for ``part`` of the run with ``seed``."""
    return torch.Generator().manual_seed(derive(seed, part))
