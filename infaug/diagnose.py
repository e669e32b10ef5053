"""Is the influence prediction borne out? A check at F's last layer.

At a fixed F, the last layer alone is a convex problem: multinomial logistic regression on F's
fixed features with L2 = damping. For each source of augmentations (E's, G's prior's, the
heuristic's) a share of the training samples is replaced by their augmentations, the last layer
is retrained to convergence (Newton's method, float64), and the measured change of the validation
loss is compared with the prediction sum_i I_aug(z_i, z~_i) / n. Where the two agree,
the influence function describes what E's augmentations do to this layer; where ``proposed``
still loses after F is retrained in full, the gap lies in what the last-layer, first-order view
leaves out: F's features move when F trains on the augmentations.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch
from torch import Tensor, nn

from infaug.engine import LastLayerInfluence
from infaug.ground_truth import train_logistic, validation_loss
from infaug.train.classifier import features

__all__ = ["last_layer_check"]


def last_layer_check(
    model: nn.Module,
    train: Tuple[Tensor, Tensor],
    validation: Tuple[Tensor, Tensor],
    augmented: Dict[str, Tensor],
    *,
    damping: float,
    shares: Sequence[float] = (0.1, 0.5, 1.0),
    seed: int = 0,
) -> Dict[str, list]:
    """For each name -> augmented training images (same rows as ``train``): a list of
    {"share", "predicted", "actual"} changes of the mean validation loss when that share of the
    training samples (drawn at random) is replaced by its augmentations."""
    x, y = train
    h = features(model, x).double().cpu()
    h_val, y_val = features(model, validation[0]).double().cpu(), validation[1].cpu()
    y = y.cpu()
    head = model.head
    start = (head.weight.detach().double().cpu(), head.bias.detach().double().cpu())
    weight, bias = train_logistic(h, y, damping, start=start)
    before = validation_loss(h_val, y_val, weight, bias)
    engine = LastLayerInfluence(weight, bias, damping=damping, method="exact").fit(h, y).set_validation(h_val, y_val)
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name, images in augmented.items():
        h_aug = features(model, images).double().cpu()
        i_aug = engine.aug(h, h_aug, y)
        rows_all = torch.randperm(len(y), generator=generator)
        results = []
        for share in shares:
            rows = rows_all[: max(1, round(share * len(y)))]
            replaced = h.clone()
            replaced[rows] = h_aug[rows]
            w, b = train_logistic(replaced, y, damping, start=(weight, bias))
            results.append({
                "share": share,
                "predicted": float(i_aug[rows].sum() / len(y)),
                "actual": validation_loss(h_val, y_val, w, b) - before,
            })
        out[name] = results
    return out
