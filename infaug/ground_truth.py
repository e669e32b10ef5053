"""Ground truth for the influence engine: on a convex problem, predicted changes of the
validation loss must match those measured by actually retraining.

The problem: fixed real features (MNIST digits through a fixed random projection), a multinomial
logistic regression with L2 = damping trained to convergence in float64. For some training samples
we remove the sample, for others we replace it by an augmented version (the digit warped by a
random affine flow with ``infaug.warp``), retrain from the optimum, and compare the measured change
of the mean validation loss with the prediction: -I_up / n for a removal, +I_aug / n for a
replacement.

Example:
    >>> from infaug.data import embedded_digits
    >>> from infaug.ground_truth import check_influence
    >>> result = check_influence(embedded_digits(), train_size=300, removals=10, replacements=10)  # doctest: +SKIP
    >>> result.removal.pearson > 0.98  # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

import infaug
from infaug.data import Digits
from infaug.engine import LastLayerInfluence


@dataclass
class Agreement:
    """Predicted against actual changes of the validation loss for one kind of perturbation."""

    predicted: Tensor
    actual: Tensor

    @property
    def pearson(self) -> float:
        return float(torch.corrcoef(torch.stack([self.predicted, self.actual]))[0, 1])

    @property
    def slope(self) -> float:
        """Least-squares slope of actual on predicted (through the origin: both are zero for no change)."""
        return float((self.predicted * self.actual).sum() / (self.predicted * self.predicted).sum())


@dataclass
class GroundTruth:
    removal: Agreement
    replacement: Agreement
    train_size: int
    features: int
    damping: float

    def summary(self) -> str:
        lines = [f"logistic regression on {self.train_size} MNIST digits, {self.features} features, damping {self.damping}"]
        for name, a in [("removals", self.removal), ("replacements", self.replacement)]:
            lines.append(f"{name:13s} n={len(a.actual):3d}  pearson={a.pearson:.4f}  slope={a.slope:.3f}")
        return "\n".join(lines)


def project(images: Tensor, projection: Tensor) -> Tensor:
    """Fixed nonlinear features of (N, 1, 28, 28) images: tanh of a random projection, float64."""
    return torch.tanh(images.flatten(1).double() @ projection)


def train_logistic(
    features: Tensor, labels: Tensor, damping: float, start: tuple[Tensor, Tensor] | None = None, total: int | None = None
):
    """argmin (1/n) sum CE(W h + b, y) + damping/2 (|W|^2 + |b|^2), by Newton's method to machine
    precision. ``total`` replaces n as the divisor: removing a sample from n keeps the 1/n of the
    objective."""
    n = features.shape[0] if total is None else total
    d = features.shape[1]
    k = int(labels.max()) + 1 if start is None else start[0].shape[0]
    weight, bias = (torch.zeros(k, d, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)) if start is None else start
    theta = torch.cat([weight, bias[:, None]], 1).reshape(-1)
    h = F.pad(features, (0, 1), value=1.0)
    onehot = F.one_hot(labels, k).double()

    def objective(theta: Tensor) -> Tensor:
        logits = h @ theta.view(k, d + 1).T
        return F.cross_entropy(logits, labels, reduction="sum") / n + 0.5 * damping * theta.square().sum()

    for _ in range(100):
        p = torch.softmax(h @ theta.view(k, d + 1).T, 1)
        grad = ((p - onehot).T @ h).reshape(-1) / n + damping * theta
        if grad.norm() < 1e-14:
            break
        # Hessian: sum_i (diag p_i - p_i p_i^T) kron h_i h_i^T / n + damping I
        hess = torch.einsum("nk,nd,ne->kde", p, h, h)
        full = torch.zeros(k, d + 1, k, d + 1, dtype=torch.float64)
        full.diagonal(dim1=0, dim2=2).copy_(hess.permute(1, 2, 0))
        outer = (p[:, :, None] * h[:, None, :]).flatten(1)
        matrix = full.reshape(k * (d + 1), -1) - outer.T @ outer
        matrix = matrix / n + damping * torch.eye(k * (d + 1), dtype=torch.float64)
        step = torch.linalg.solve(matrix, grad)
        # Backtracking: a full Newton step from far away (a warm start on changed features) can
        # overshoot; halve it until the objective does not rise.
        current, scale = objective(theta), 1.0
        while scale > 1e-6 and objective(theta - scale * step) > current:
            scale /= 2
        theta = theta - scale * step
    theta = theta.view(k, d + 1)
    return theta[:, :d].contiguous(), theta[:, d].contiguous()


def validation_loss(features: Tensor, labels: Tensor, weight: Tensor, bias: Tensor) -> float:
    return float(F.cross_entropy(F.linear(features, weight, bias), labels))


def random_warp(images: Tensor, generator: torch.Generator) -> Tensor:
    """Each image rotated, scaled and shifted at random by ``infaug.warp``."""
    n, _, h, w = images.shape
    angle = (torch.rand(n, generator=generator) - 0.5) * 0.6
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    matrix = torch.stack([scale * angle.cos(), -scale * angle.sin(), scale * angle.sin(), scale * angle.cos()], 1)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.2
    theta_w = matrix.view(n, 4, 1, 1).expand(n, 4, h, w).contiguous()
    theta_b = shift.view(n, 2, 1, 1).expand(n, 2, h, w).contiguous()
    return infaug.warp(images, theta_w, theta_b, smooth=1)


def check_influence(
    digits: Digits,
    *,
    train_size: int = 2000,
    validation_size: int = 500,
    features: int = 32,
    removals: int = 40,
    replacements: int = 40,
    damping: float = 0.01,
    seed: int = 0,
) -> GroundTruth:
    """Compares the influence engine's predictions with retraining; see the module docstring.

    Removed samples: half those with the largest predicted effect, half at random; replaced
    samples: at random.
    """
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(digits), generator=generator)
    train_index, val_index = order[:train_size], order[train_size : train_size + validation_size]
    projection = torch.randn(784, features, generator=generator, dtype=torch.float64) * (3.0 / math.sqrt(784))
    h_train, y_train = project(digits.images[train_index], projection), digits.labels[train_index]
    h_val, y_val = project(digits.images[val_index], projection), digits.labels[val_index]
    weight, bias = train_logistic(h_train, y_train, damping)
    base_loss = validation_loss(h_val, y_val, weight, bias)
    engine = LastLayerInfluence(weight, bias, damping=damping, method="exact").fit(h_train, y_train).set_validation(h_val, y_val)
    n = train_size

    def retrained_change(h: Tensor, y: Tensor) -> float:
        new_weight, new_bias = train_logistic(h, y, damping, start=(weight, bias), total=n)
        return validation_loss(h_val, y_val, new_weight, new_bias) - base_loss

    # Removals: predicted -I_up / n.
    scores = engine.up(h_train, y_train)
    largest = scores.abs().argsort(descending=True)[: removals // 2]
    rest = torch.tensor([i for i in torch.randperm(n, generator=generator).tolist() if i not in set(largest.tolist())])
    removed = torch.cat([largest, rest[: removals - len(largest)]])
    predicted_removal = -scores[removed] / n
    actual_removal = []
    for i in removed.tolist():
        keep = torch.arange(n) != i
        actual_removal.append(retrained_change(h_train[keep], y_train[keep]))

    # Replacements by augmented digits: predicted +I_aug / n.
    replaced = torch.randperm(n, generator=generator)[:replacements]
    augmented = project(random_warp(digits.images[train_index[replaced]], generator), projection)
    predicted_replacement = engine.aug(h_train[replaced], augmented, y_train[replaced]) / n
    actual_replacement = []
    for j, i in enumerate(replaced.tolist()):
        h = h_train.clone()
        h[i] = augmented[j]
        actual_replacement.append(retrained_change(h, y_train))

    return GroundTruth(
        removal=Agreement(predicted_removal, torch.tensor(actual_removal, dtype=torch.float64)),
        replacement=Agreement(predicted_replacement, torch.tensor(actual_replacement, dtype=torch.float64)),
        train_size=n,
        features=features,
        damping=damping,
    )


def plot(result: GroundTruth, path: str | Path) -> Path:
    """Predicted against actual change of the validation loss (Koh & Liang, Figure 2), as PNG."""
    from matplotlib.figure import Figure

    from infaug.viz import save_figure

    figure = Figure(figsize=(9, 4.2))
    axes = figure.subplots(1, 2)
    for ax, (name, a) in zip(axes, [("removing a sample", result.removal), ("replacing it by an augmentation", result.replacement)]):
        limit = float(torch.cat([a.predicted, a.actual]).abs().max()) * 1.1
        ax.plot([-limit, limit], [-limit, limit], color="0.7", lw=1)
        ax.scatter(a.predicted.numpy(), a.actual.numpy(), s=14)
        ax.set(xlim=(-limit, limit), ylim=(-limit, limit), xlabel="predicted change of validation loss",
               ylabel="actual change (retrained)", title=f"{name}\npearson {a.pearson:.3f}, slope {a.slope:.2f}")
        ax.ticklabel_format(style="sci", scilimits=(-2, 2))
    figure.tight_layout()
    return save_figure(figure, path, dpi=110)
