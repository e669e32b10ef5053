"""Influence through all of F's parameters: what ``encoder.influence = "network"`` trains E against.

SPEC 3 trains E against the influence on F's last layer (``infaug.LastLayerInfluence``), which holds
F's features fixed: an augmentation that would teach F's convolutions an invariance cannot gain
there (the README's diagnostics: the heuristic is measured to hurt the retrained last layer, yet it
is as good as any method after F's full training). This engine takes theta to be every parameter
of F instead:

    H      = (1/n) sum_i J_i^T (diag(p_i) - p_i p_i^T) J_i + lambda I   (the Gauss-Newton Hessian,
             J_i = d logits_i / d theta; positive definite where the true Hessian of a network is not)
    s_val  = H^-1 g_val   by conjugate gradients (``iterations`` at most), g_val over the validation split
    I_up(z) = -<s_val, grad_theta l(z)>,   I_aug(z, z~) = I_up(z~) - I_up(z)   (SPEC 2.1's signs)

<s_val, grad_theta l(z)> is the derivative of l(z) along s_val, one forward-mode pass for a whole
batch (``torch.func.jvp``), and it is differentiable with respect to the images, so E's gradient
flows through it into the fused ``augment`` and G. F is used in eval mode (BatchNorm's running
statistics), its parameters are not changed. On a model whose only parameters are its last layer
it is ``LastLayerInfluence`` (the Gauss-Newton Hessian of softmax cross-entropy on fixed features
is its Hessian): the test of this module.

Example:
    >>> import torch
    >>> from infaug.models import AllConvNet
    >>> from infaug.train.network_influence import NetworkInfluence
    >>> net = AllConvNet(in_channels=1, num_classes=10, width=4)
    >>> x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    >>> engine = NetworkInfluence(net, damping=0.1).fit(x, y).set_validation(x[:8], y[:8])
    >>> engine.up(x[:4], y[:4]).shape
    torch.Size([4])
"""

from __future__ import annotations

import time
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, jvp, vjp

from infaug.engine import InaccurateSolveWarning, conjugate_gradients
from infaug.train.modes import evaluating

__all__ = ["NetworkInfluence"]


class NetworkInfluence:
    """s_val over all of ``model``'s parameters (see the module docstring).

    Args:
        model: F (any ``nn.Module`` from images to logits); its parameters and buffers are
            copied when the engine is built, and never modified.
        damping: lambda > 0 added to the Gauss-Newton Hessian.
        iterations: the most conjugate-gradient iterations of the solve; ``tol`` the relative
            residual |H s - g| / |g| at which it stops earlier. A solve that ends above ``tol``
            warns (``infaug.engine.InaccurateSolveWarning``): the conditioning of H is about
            (lambda_max + damping) / damping, and a trained network's lambda_max is large (about
            30 for MNIST's F at 1%), so a small damping needs many iterations.
        batch_size: images per forward pass in the Hessian-vector products and the gradients.
    """

    def __init__(self, model: nn.Module, *, damping: float, iterations: int = 50, tol: float = 1e-2, batch_size: int = 500) -> None:
        if not damping > 0:
            raise ValueError(f"NetworkInfluence: damping must be > 0 (the Gauss-Newton Hessian may be singular), got {damping!r}")
        if not (isinstance(iterations, int) and iterations >= 1):
            raise ValueError(f"NetworkInfluence: iterations must be an int >= 1, got {iterations!r}")
        self.model, self.damping, self.iterations, self.tol, self.batch_size = model, float(damping), iterations, float(tol), batch_size
        self.names = [name for name, _ in model.named_parameters()]
        # copies: the engine keeps F as it was when built, even if F trains on
        self.params = tuple(p.detach().clone() for p in model.parameters())
        self.buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
        self.train_sets: list[tuple[Tensor, Tensor]] = []
        self.s: Optional[tuple[Tensor, ...]] = None
        self.solve_info: dict = {}

    def _logits(self, params: tuple, x: Tensor) -> Tensor:
        return functional_call(self.model, ({**dict(zip(self.names, params)), **self.buffers},), (x,))

    def fit(self, images: Tensor, labels: Tensor) -> "NetworkInfluence":
        """Adds training samples to H (kept by reference; any number of calls)."""
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"NetworkInfluence.fit: images have {images.shape[0]} rows but labels {labels.shape[0]}")
        self.train_sets.append((images.detach(), labels))
        return self

    def _batches(self):
        for images, labels in self.train_sets:
            for start in range(0, len(labels), self.batch_size):
                yield images[start : start + self.batch_size], labels[start : start + self.batch_size]

    def hessian_vector_product(self, vector: tuple) -> tuple:
        """(H v) for v a tuple shaped like the parameters."""
        count = sum(len(labels) for _, labels in self.train_sets)
        out = [self.damping * v for v in vector]
        with evaluating(self.model):
            for x, _ in self._batches():
                logits, pullback = vjp(lambda *p: self._logits(p, x), *self.params)
                _, jv = jvp(lambda *p: self._logits(p, x), self.params, tuple(vector))
                p = logits.softmax(1)
                u = p * jv - p * (p * jv).sum(1, keepdim=True)  # (diag(p) - p p^T) J v, per sample
                for o, g in zip(out, pullback(u / count)):
                    o.add_(g)
        return tuple(out)

    def _shaped(self, flat: Tensor) -> tuple:
        return tuple(part.view_as(p) for part, p in zip(flat.split([p.numel() for p in self.params]), self.params))

    def set_validation(self, images: Tensor, labels: Tensor) -> "NetworkInfluence":
        """g_val over (images, labels), then s_val = H^-1 g_val by conjugate gradients."""
        if not self.train_sets:
            raise RuntimeError("NetworkInfluence.set_validation: call fit(images, labels) with the training samples first")
        start = time.perf_counter()
        g = [torch.zeros_like(p) for p in self.params]
        with evaluating(self.model):
            for begin in range(0, len(labels), self.batch_size):
                x, y = images[begin : begin + self.batch_size], labels[begin : begin + self.batch_size]
                loss = lambda *p: F.cross_entropy(self._logits(p, x), y, reduction="sum") / len(labels)  # noqa: E731
                _, pullback = vjp(loss, *self.params)
                for total, part in zip(g, pullback(torch.ones((), dtype=self.params[0].dtype, device=x.device))):
                    total.add_(part)
        flat_product = lambda v: torch.cat([t.reshape(-1) for t in self.hessian_vector_product(self._shaped(v))])  # noqa: E731
        with torch.no_grad():
            s, iterations, residual = conjugate_gradients(flat_product, torch.cat([t.reshape(-1) for t in g]),
                                                          tol=self.tol, max_iter=self.iterations)
        self.s = self._shaped(s)
        self.solve_info = dict(method="cg", iterations=iterations, residual=residual, seconds=time.perf_counter() - start)
        if not residual <= self.tol:
            warnings.warn(f"NetworkInfluence: the relative residual |H s - g| / |g| = {residual:.3g} is above tol={self.tol:g} after "
                          f"{iterations} conjugate-gradient iterations at damping={self.damping:g}; raise the damping or the iterations",
                          InaccurateSolveWarning, stacklevel=2)
        return self

    def up(self, images: Tensor, labels: Tensor) -> Tensor:
        """I_up (N,) = -<s_val, grad_theta l(z_i)>, differentiable with respect to ``images``."""
        if self.s is None:
            raise RuntimeError("NetworkInfluence.up: call set_validation(images, labels) first")
        parts = []
        with evaluating(self.model):
            for start in range(0, len(labels), self.batch_size):
                x, y = images[start : start + self.batch_size], labels[start : start + self.batch_size]
                loss = lambda *p: F.cross_entropy(self._logits(p, x), y, reduction="none")  # noqa: E731
                parts.append(jvp(loss, self.params, self.s)[1])
        return -torch.cat(parts)

    def aug(self, images: Tensor, images_aug: Tensor, labels: Tensor) -> Tensor:
        """I_aug (N,) = I_up(x~) - I_up(x)."""
        return self.up(images_aug, labels) - self.up(images, labels)
