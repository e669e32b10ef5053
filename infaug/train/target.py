"""E's target: the samples whose mean loss gradient is s_val's g_val (``encoder.target``).

"validation" is the validation split alone (the paper's target; 100 digits at 1% of MNIST's labels,
which E can fit). "pseudo" adds the unlabelled images held out from F's training
(``Task.target_rows``, never in F's semi-supervised batches), each labelled by F where F's
confidence reaches ``encoder.target_threshold``, re-labelled at F's weights of each round:
thousands of digits, a target E cannot fit by fitting a hundred.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from infaug.train.target import pseudo_labelled
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    >>> with torch.no_grad():
    ...     _ = model[1].weight.copy_(torch.tensor([[9.0, 0, 0, 0], [0, 0, 0, 0]])), model[1].bias.zero_()
    >>> images = torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 0]]).view(2, 1, 2, 2)
    >>> x, y = pseudo_labelled(model, images, threshold=0.9)
    >>> len(x), y.tolist()                    # the first is class 0 with p > 0.99; the second 50/50
    (1, [0])
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from infaug.train.modes import evaluating

__all__ = ["e_target", "pseudo_labelled"]


@torch.no_grad()
def pseudo_labelled(model: nn.Module, images: Tensor, threshold: float, batch_size: int = 1000) -> Tuple[Tensor, Tensor]:
    """(the ``images`` on which ``model``, in eval mode, is at least ``threshold`` confident,
    their predicted labels)."""
    keep, labels = [], []
    with evaluating(model):
        for start in range(0, len(images), batch_size):
            confidence, label = model(images[start : start + batch_size]).softmax(1).max(1)
            keep.append(confidence >= threshold)
            labels.append(label)
    if not keep:
        return images[:0], torch.zeros(0, dtype=torch.long, device=images.device)
    keep = torch.cat(keep)
    return images[keep], torch.cat(labels)[keep]


def e_target(model: nn.Module, validation: Tuple[Tensor, Tensor], held_out: Tensor, threshold: float) -> Tuple[Tensor, Tensor, int]:
    """(images, labels, how many of them are pseudo-labelled): the validation split followed by the
    images of ``held_out`` that ``model`` labels with confidence ``threshold`` (none when
    ``held_out`` is empty)."""
    if len(held_out) == 0:
        return validation[0], validation[1], 0
    x, y = pseudo_labelled(model, held_out, threshold)
    return torch.cat([validation[0], x]), torch.cat([validation[1], y.to(validation[1].dtype)]), len(y)
