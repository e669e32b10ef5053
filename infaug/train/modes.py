"""Context managers that switch modules' modes for a block and restore them after, also when the
block raises.

Example:
    >>> from torch import nn
    >>> from infaug.train.modes import evaluating, frozen
    >>> net = nn.Linear(2, 2)
    >>> with evaluating(net):
    ...     net.training
    False
    >>> net.training
    True
    >>> with frozen(net):
    ...     net.training, net.weight.requires_grad
    (False, False)
    >>> net.training, net.weight.requires_grad
    (True, True)
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

__all__ = ["evaluating", "frozen"]


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode inside the block (BatchNorm's running statistics, no dropout); after
    it, ``module.train(mode)`` with the mode ``module`` had before."""
    training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(training)


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for ``modules`` inside the block (restored after: each
    module's mode, and each parameter's own ``requires_grad``)."""
    states = [(m, m.training, [p.requires_grad for p in m.parameters()]) for m in modules]
    for m in modules:
        m.eval()
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m, training, flags in states:
            m.train(training)
            for p, flag in zip(m.parameters(), flags):
                p.requires_grad_(flag)
