"""What ``encoder.influence = "unrolled"`` trains E against: F's validation loss after it has trained on
E's augmentations, not a prediction of it.

The influence function (``infaug.LastLayerInfluence``, ``NetworkInfluence``) predicts to first order
how adding an augmentation changes the validation loss; E, trained to minimise the prediction,
moves to where it no longer holds (the README's MNIST diagnostics). This objective measures the
change instead, for a few steps of training, and stays differentiable in the augmentations:

    theta_0 = F's parameters;  theta_{t+1} = theta_t - lr * grad_theta mean l(theta_t; [x, x~], [y, y])
    after(x~) = mean over the validation split of l(theta_T; x_val, y_val)        (T = ``steps``)
    delta(x~) = after(x~) - after(x)        (the batch with the augmentations against the same batch
                                             with the originals in their place)

delta < 0: training on the augmentations lowers F's validation loss more than training on the
originals again. The T plain gradient steps are taken functionally (``torch.func.functional_call``)
with the graph kept, so d delta / d x~ flows back through every step into the fused ``augment``, G
and E. F is evaluated in eval mode (BatchNorm's running statistics) on copies of its parameters and
buffers: F itself is not changed. One step is, to first order, -lr <grad l_val, grad l(x~) - grad
l(x)> / 2, the influence with the identity for the Hessian; more steps see how the training that
follows bends that.

Example:
    >>> import torch
    >>> from infaug.models import AllConvNet
    >>> from infaug.train.unrolled import UnrolledObjective
    >>> net = AllConvNet(in_channels=1, num_classes=10, width=4)
    >>> x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    >>> objective = UnrolledObjective(net, (x[:4], y[:4]), steps=2, lr=0.1)
    >>> x_aug = (x + 0.1 * torch.randn_like(x)).requires_grad_()
    >>> delta = objective.delta(x, x_aug, y)
    >>> delta.backward(); x_aug.grad.shape
    torch.Size([8, 1, 28, 28])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from infaug.train.modes import evaluating

__all__ = ["UnrolledObjective"]


class UnrolledObjective:
    """delta(x~) of the module docstring, at the parameters ``model`` has when this is built.

    Args:
        model: F (images to logits); its parameters and buffers are copied, never modified.
        validation: (images, labels) whose mean loss is measured after the steps.
        steps: T >= 1, the gradient steps taken on each batch.
        lr: the step size of those steps (plain gradient descent), > 0.
    """

    def __init__(self, model: nn.Module, validation: tuple[Tensor, Tensor], *, steps: int, lr: float) -> None:
        if not (isinstance(steps, int) and steps >= 1):
            raise ValueError(f"UnrolledObjective: steps must be an int >= 1, got {steps!r}")
        if not lr > 0:
            raise ValueError(f"UnrolledObjective: lr must be > 0, got {lr!r}")
        x_val, y_val = validation
        if len(x_val) != len(y_val) or len(y_val) == 0:
            raise ValueError(f"UnrolledObjective: validation needs as many labels as images, at least one; got {len(x_val)} and {len(y_val)}")
        self.model, self.steps, self.lr = model, steps, float(lr)
        self.validation = (x_val, y_val)
        self.params = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.buffers = {name: b.detach().clone() for name, b in model.named_buffers()}

    def _loss(self, params: dict, x: Tensor, y: Tensor) -> Tensor:
        with evaluating(self.model):
            logits = functional_call(self.model, ({**params, **self.buffers},), (x,))
        return F.cross_entropy(logits, y)

    def after(self, x: Tensor, y: Tensor, *, create_graph: bool = True) -> Tensor:
        """The mean validation loss after ``steps`` gradient steps on (x, y) from F's parameters;
        differentiable in x when ``create_graph``."""
        with torch.enable_grad():
            params = {name: p.clone().requires_grad_(True) for name, p in self.params.items()}
            for _ in range(self.steps):
                grads = torch.autograd.grad(self._loss(params, x, y), list(params.values()), create_graph=create_graph)
                params = {name: p - self.lr * g for (name, p), g in zip(params.items(), grads)}
            return self._loss(params, *self.validation)

    def delta(self, x: Tensor, x_aug: Tensor, y: Tensor) -> Tensor:
        """after([x, x~]) - after([x, x]): a scalar, differentiable in ``x_aug``."""
        if x_aug.shape != x.shape or len(y) != len(x):
            raise ValueError(f"UnrolledObjective.delta: x_aug must have x's shape {tuple(x.shape)} and y {len(x)} labels; "
                             f"got {tuple(x_aug.shape)} and {len(y)}")
        labels = torch.cat([y, y])
        with torch.no_grad():
            reference = self.after(torch.cat([x, x]), labels, create_graph=False).detach()
        return self.after(torch.cat([x, x_aug]), labels) - reference
