"""The influence engine, `infaug.LastLayerInfluence` (a module apart from the op `infaug.influence`
(ops.py), whose name it would otherwise shadow): s_val = H^-1 g_val for a linear top layer with softmax
cross-entropy, and the influence of training samples (I_up) and of their augmentations (I_aug).

theta = (W, b) is flattened as a (K, P) matrix, P = D + 1 with a bias (the bias is the last column)
and P = D without. For one sample, with h~ = [h; 1], the Hessian of the cross-entropy is
(diag(p) - p p^T) kron (h~ h~^T) and its gradient is r h~^T with r = p - onehot(y).

Example:
    >>> import torch
    >>> from infaug import LastLayerInfluence
    >>> W, b = torch.randn(3, 5), torch.zeros(3)
    >>> train_h, train_y = torch.randn(100, 5), torch.randint(0, 3, (100,))
    >>> val_h, val_y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    >>> engine = LastLayerInfluence(W, b, damping=0.01).fit(train_h, train_y).set_validation(val_h, val_y)
    >>> engine.solve_info["residual"] < 1e-8
    True
    >>> engine.up(train_h[:4], train_y[:4]).shape  # removing sample i changes the val loss by -I_up / n
    torch.Size([4])
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Iterable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infaug.ops import influence

__all__ = ["InaccurateSolveWarning", "LastLayerInfluence", "conjugate_gradients", "last_layer_features", "last_linear", "solver_costs"]

Batches = Union[Tensor, Iterable[Tuple[Tensor, Tensor]]]
METHODS = ("auto", "exact", "cg", "lissa")
LISSA_TOL = 1e-3  # lissa's default ``tol``: the relative residual |H s - g| / |g| it must reach
LISSA_SCALE_FACTOR = 0.6  # its default ``scale``, times the power-iteration estimate of lambda_max(H)
LISSA_MAX_DEPTH = 100_000  # the cap on its default ``depth``


def conjugate_gradients(product, g: Tensor, *, tol: float, max_iter: int) -> Tuple[Tensor, int, float]:
    """Solves H x = g for a symmetric positive definite H given as ``product(v) = H v``, until the
    residual |g - H x| is at most ``tol`` |g| or after ``max_iter`` iterations; returns (x, the
    iterations run, the relative residual of the recurrence)."""
    x = torch.zeros_like(g)
    r = g.clone()
    d = r.clone()
    rr = (r * r).sum()
    norm_g = g.norm()
    iteration = 0
    for iteration in range(1, max_iter + 1):
        hd = product(d)
        step = rr / (d * hd).sum()
        x += step * d
        r -= step * hd
        rr_next = (r * r).sum()
        if rr_next.sqrt() <= tol * norm_g:
            rr = rr_next
            break
        d = r + (rr_next / rr) * d
        rr = rr_next
    return x, iteration, float(rr.sqrt() / norm_g.clamp_min(1e-300))


class InaccurateSolveWarning(UserWarning):
    """A solve of s_val = H^-1 g_val ended with its relative residual above its ``tol``."""


class LastLayerInfluence:
    """Influence functions restricted to the last (linear) layer of a classifier.

    Args:
        weight: (K, D) the last layer's weight W. bias: (K,) its bias b, or None.
        damping: lambda >= 0 added to the Hessian (and the L2 weight the model is assumed trained with).
        method: "exact" (the K*P square Hessian accumulated in float64 and factorised), "cg"
            (conjugate gradients with matrix-free Hessian-vector products, two GEMMs over the
            training features each), "lissa" (the stochastic recursion of Agarwal et al.), or
            "auto": from the costs of :func:`solver_costs`, exact when its Hessian fits in
            ``exact_memory`` bytes and its multiply-adds per training sample are no more than cg's
            with as many iterations as cg may need (its exact-arithmetic bound K*P, capped at
            ``max_iter``); else cg. For K = 10 classes that is exact up to D of about 200.
        solver_options: cg: ``tol`` (1e-10), ``max_iter`` (1000). lissa: ``tol`` (1e-3),
            ``scale`` (None: 0.6 lambda_max(H)), ``depth`` (None: chosen from the scale and the
            damping to reach ``tol``), ``repeats`` (1), ``batch_size`` (None: all training
            samples), ``seed`` (0), ``strict`` (False). auto: ``exact_memory`` (1 GiB), ``max_iter``
            (1000, passed on to cg), or ``exact_limit``: exact while K*P <= it. cg and lissa
            keep the training features in their own dtype and run their Hessian-vector products'
            GEMMs in it: float32 features limit the relative residual to about 1e-6.
        distributed: False (one process), True (the default torch.distributed group) or a process
            group: the features given to :meth:`fit` and :meth:`set_validation` are then this
            rank's shard, and the sums over samples (the exact Hessian once, each cg Hessian-vector
            product, the validation gradient and the sample counts) are all-reduced over the group,
            so s_val is that of all ranks' samples together; it is broadcast from the group's first
            rank, so every rank holds the same bits. Every rank must make the same calls. lissa
            with ``batch_size`` (minibatches drawn from one rank's rows) is refused.

    LiSSA: the recursion x <- g + (I - H / scale) x, started at x = g, gives after ``depth`` steps
    s = x / scale with ``s - s_val = -(I - H / scale)^(depth + 1) s_val`` and
    ``H s - g = -(I - H / scale)^(depth + 1) g``: with full batches, both the relative error of s
    and its relative residual are at most rho^(depth + 1), where rho = max(|1 - damping / scale|,
    |lambda_max / scale - 1|), as the damped H has its eigenvalues in [damping, lambda_max]. The
    rate is best at scale = (lambda_max + damping) / 2, and the recursion diverges below
    lambda_max / 2; the default scale, 0.6 times the estimate of lambda_max(H) by
    :meth:`largest_eigenvalue`, converges while that estimate is above lambda_max / 1.2 (power
    iteration's is far closer) and takes 0.6 times the steps of scale = lambda_max. The default
    depth is ``ceil(log(tol) / log(rho))``, at most 100000; with ``scale`` given, lambda_max is
    not computed and rho = |1 - damping / scale|; ``depth`` given is not capped. After the solve
    the relative residual is measured with full-batch products; above ``tol`` the engine warns with an
    :class:`InaccurateSolveWarning`, or with ``strict=True`` raises RuntimeError, naming a depth
    (or scale) that would reach ``tol``. Minibatch LiSSA (``batch_size``) is stochastic: it uses the
    same depth, but its residual has a floor from the sampling noise, often above ``tol``, and the
    message then says that more repeats or full batches are needed.

    After :meth:`set_validation`, ``solve_info`` holds the method, iterations, seconds and the
    relative residual ``|H s - g| / |g|`` of the solve (for lissa also its scale, depth and tol).
    """

    def __init__(
        self, weight: Tensor, bias: Optional[Tensor] = None, *, damping: float = 0.01, method: str = "auto",
        distributed=False, **solver_options
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
        if weight.dim() != 2:
            raise ValueError(f"weight must have shape (K, D), got {tuple(weight.shape)}")
        if bias is not None and (bias.shape != weight.shape[:1] or bias.device != weight.device):
            raise ValueError(
                f"bias must have shape (K,) = ({weight.shape[0]},) on {weight.device}, got {tuple(bias.shape)} on {bias.device}"
            )
        if damping < 0 or not math.isfinite(damping):
            raise ValueError(f"damping must be a finite number >= 0, got {damping}")
        self.weight = weight.detach()
        self.bias = None if bias is None else bias.detach()
        self.damping = float(damping)
        self.num_classes, self.num_features = weight.shape
        self.num_params = self.num_features + (bias is not None)
        size = self.num_classes * self.num_params
        exact_limit = solver_options.pop("exact_limit", None)
        exact_memory = solver_options.pop("exact_memory", 1 << 30)
        if method == "auto":
            if exact_limit is not None:
                method = "exact" if size <= exact_limit else "cg"
            else:
                costs = solver_costs(self.num_classes, self.num_features, bias=bias is not None,
                                     max_iter=solver_options.get("max_iter", 1000))
                method = "exact" if costs["exact_bytes"] <= exact_memory and costs["exact_macs_per_sample"] <= costs["cg_macs_per_sample"] else "cg"
            if method == "exact":
                solver_options.pop("max_iter", None)
        self.method = method
        allowed = {
            "exact": set(),
            "cg": {"tol", "max_iter"},
            "lissa": {"tol", "scale", "depth", "repeats", "batch_size", "seed", "strict"},
        }
        unknown = set(solver_options) - allowed[self.method]
        if unknown:
            raise TypeError(f"unknown options for method {self.method!r}: {sorted(unknown)}; it takes {sorted(allowed[self.method])}")
        if self.method == "lissa":
            self._validate_lissa_options(solver_options)
        self._group = _process_group(distributed)
        if self._group is not None and self.method == "lissa" and solver_options.get("batch_size") is not None:
            raise ValueError("lissa with batch_size draws minibatches from one rank's rows; with distributed, use batch_size=None or method='cg'")
        self.solver_options = solver_options
        self.count = 0  # training samples given to fit (on this rank)
        self._synced: Optional[Tuple[int, Optional[Tensor]]] = None  # (all ranks' count, their Hessian sum)
        # exact: the Hessian sum in float64; cg/lissa: the training features and their softmax.
        self._hessian_sum: Optional[Tensor] = None
        self._train: list[Tuple[Tensor, Tensor]] = []
        self.s_weight: Optional[Tensor] = None
        self.s_bias: Optional[Tensor] = None
        self.solve_info: dict = {}

    # ---- data --------------------------------------------------------------------------------

    def _batches(self, features: Batches, labels: Optional[Tensor], argument: str):
        if isinstance(features, Tensor):
            if labels is None:
                raise ValueError(f"{argument}: labels are required with a features tensor")
            yield self._checked(features, labels, argument)
            return
        if labels is not None:
            raise ValueError(f"{argument}: give labels inside the iterable of (features, labels) batches, not separately")
        for batch in features:
            yield self._checked(batch[0], batch[1], argument)

    def _checked(self, features: Tensor, labels: Tensor, argument: str) -> Tuple[Tensor, Tensor]:
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"{argument}: features must have shape (N, D) = (N, {self.num_features}), got {tuple(features.shape)}")
        if labels.shape != features.shape[:1]:
            raise ValueError(f"{argument}: labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}")
        if features.device != self.weight.device or labels.device != self.weight.device:
            raise ValueError(
                f"{argument}: features and labels must be on the weight's device ({self.weight.device}), "
                f"got {features.device} and {labels.device}"
            )
        if labels.dtype != torch.int64:
            raise TypeError(f"{argument}: labels must be torch.int64, got {labels.dtype}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{argument}: labels must lie in [0, K) = [0, {self.num_classes}), "
                f"got values from {int(labels.min())} to {int(labels.max())}"
            )
        return features.detach(), labels

    def _extended(self, features: Tensor) -> Tensor:
        """h~ = [h, 1] in float64 (or h without a bias)."""
        h = features.to(torch.float64)
        return F.pad(h, (0, 1), value=1.0) if self.bias is not None else h

    def _probabilities(self, features: Tensor) -> Tensor:
        logits = F.linear(features.to(torch.float64), self.weight.double(), None if self.bias is None else self.bias.double())
        return torch.softmax(logits, dim=1)

    # ---- fit and validation ------------------------------------------------------------------

    def fit(self, features: Batches, labels: Optional[Tensor] = None) -> "LastLayerInfluence":
        """Accumulates the Hessian over training samples: a (N, D) tensor with (N,) labels, or an
        iterable of (features, labels) batches (a DataLoader). May be called any number of times."""
        for h, y in self._batches(features, labels, "fit"):
            p = self._probabilities(h)
            self.count += h.shape[0]
            if self.method == "exact":
                self._accumulate_hessian(self._extended(h), p)
            else:
                self._train.append((h, p))
        self.s_weight = self.s_bias = None  # a new fit invalidates s_val
        self._synced = None
        return self

    # ---- sums over the ranks (the identity in one process) -----------------------------------

    def _sum(self, tensor: Tensor) -> Tensor:
        if self._group is not None:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM, group=self._group)
        return tensor

    def _sync(self) -> Tuple[int, Optional[Tensor]]:
        """(the number of training samples over all ranks, the exact Hessian sum over all ranks or
        None for cg/lissa); all-reduced once after each fit."""
        if self._synced is None:
            if self._group is None:
                self._synced = (self.count, self._hessian_sum)
            else:
                count = int(self._sum(torch.tensor([self.count], dtype=torch.float64, device=self.weight.device)).item())
                hessian = None
                if self.method == "exact":
                    size = self.num_classes * self.num_params
                    local = self._hessian_sum if self._hessian_sum is not None else torch.zeros(size, size, dtype=torch.float64, device=self.weight.device)
                    hessian = self._sum(local.clone())
                self._synced = (count, hessian)
        return self._synced

    def _accumulate_hessian(self, h: Tensor, p: Tensor) -> None:
        k, size = self.num_classes, self.num_classes * self.num_params
        if self._hessian_sum is None:
            self._hessian_sum = torch.zeros(size, size, dtype=torch.float64, device=h.device)
        blocks = torch.einsum("nk,nd,ne->kde", p, h, h)  # sum_i p_ik h~_i h~_i^T
        view = self._hessian_sum.view(k, self.num_params, k, self.num_params)
        view.diagonal(dim1=0, dim2=2).add_(blocks.permute(1, 2, 0))
        outer = (p[:, :, None] * h[:, None, :]).reshape(h.shape[0], size)  # p_i kron h~_i
        self._hessian_sum.addmm_(outer.T, outer, alpha=-1.0)

    def hessian_vector_product(self, vector: Tensor, rows: Optional[Tensor] = None) -> Tensor:
        """H v for v (K, P) in float64, without forming H (two GEMMs over the stored training
        features; ``rows`` picks a subset of them, as LiSSA's minibatches do)."""
        self._require_fit("hessian_vector_product")
        count, hessian = self._sync()
        if hessian is not None:
            flat = hessian @ vector.reshape(-1) / count
            return flat.view_as(vector) + self.damping * vector
        total = torch.zeros_like(vector)
        local = 0
        chunks = self._train if rows is None else [self._rows(rows)]
        d = self.num_features
        for h, p in chunks:
            # The two GEMMs run in the features' own dtype (no float64 copy of the features: for
            # float32 that halves their cost), the per-sample (B, K) part and the sums in float64.
            v = vector.to(h.dtype)
            z = (h @ v[:, :d].T).double()  # (B, K)
            if self.bias is not None:
                z += vector[:, d]
            q = p * z - p * (p * z).sum(1, keepdim=True)  # (diag(p) - p p^T) z per sample
            total[:, :d] += (q.to(h.dtype).T @ h).double()
            if self.bias is not None:
                total[:, d] += q.sum(0)
            local += h.shape[0]
        if rows is not None:
            return total / local + self.damping * vector  # a minibatch of this rank's rows (one process)
        return self._sum(total) / count + self.damping * vector

    def _rows(self, rows: Tensor) -> Tuple[Tensor, Tensor]:
        if not hasattr(self, "_all_train") or self._all_train[0].shape[0] != self.count:
            self._all_train = (torch.cat([h for h, _ in self._train]), torch.cat([p for _, p in self._train]))
        return self._all_train[0][rows], self._all_train[1][rows]

    def validation_gradient(self, features: Batches, labels: Optional[Tensor] = None) -> Tensor:
        """g_val (K, P) in float64: the gradient of the mean validation cross-entropy."""
        total = torch.zeros(self.num_classes, self.num_params, dtype=torch.float64, device=self.weight.device)
        count = 0
        for h, y in self._batches(features, labels, "set_validation"):
            residual = self._probabilities(h) - F.one_hot(y, self.num_classes).double()
            total += residual.T @ self._extended(h)
            count += h.shape[0]
        if self._group is not None:
            counted = self._sum(torch.tensor([float(count)], dtype=torch.float64, device=total.device))
            self._sum(total)
            count = int(counted.item())
        if count == 0:
            raise ValueError("set_validation: no validation samples given" + (" on any rank" if self._group is not None else ""))
        return total / count

    def set_validation(self, features: Batches, labels: Optional[Tensor] = None) -> "LastLayerInfluence":
        """Computes s_val = H^-1 g_val from validation samples (a tensor with labels, or batches)."""
        self._require_fit("set_validation")
        g = self.validation_gradient(features, labels)
        start = time.perf_counter()
        solution, iterations = getattr(self, f"_solve_{self.method}")(g)
        seconds = time.perf_counter() - start
        residual = (self.hessian_vector_product(solution) - g).norm() / g.norm().clamp_min(1e-300)
        self.solve_info = dict(method=self.method, iterations=iterations, seconds=seconds, residual=float(residual))
        if self.method == "lissa":
            self.solve_info.update(self._lissa_settings)
            self._check_lissa(float(residual))
        if self._group is not None:  # the same bits on every rank
            torch.distributed.broadcast(solution, src=torch.distributed.get_global_rank(self._group, 0), group=self._group)
        solution = solution.to(self.weight.dtype)
        self.s_weight = solution[:, : self.num_features].contiguous()
        self.s_bias = solution[:, self.num_features].contiguous() if self.bias is not None else None
        return self

    def _require_fit(self, what: str) -> None:
        if self._sync()[0] == 0:
            raise RuntimeError(f"{what} needs the training samples first: call fit(features, labels)"
                               + (" (no rank has any)" if self._group is not None else ""))

    # ---- solvers -----------------------------------------------------------------------------

    def _solve_exact(self, g: Tensor) -> Tuple[Tensor, int]:
        size = g.numel()
        count, hessian_sum = self._sync()
        hessian = hessian_sum / count + self.damping * torch.eye(size, dtype=torch.float64, device=g.device)
        factor, info = torch.linalg.cholesky_ex(hessian)
        if int(info) != 0:
            raise RuntimeError(
                "exact: the damped Hessian is not positive definite (damping "
                f"{self.damping}); use a positive damping"
            )
        return torch.cholesky_solve(g.reshape(-1, 1), factor).view_as(g), 1

    def _solve_cg(self, g: Tensor) -> Tuple[Tensor, int]:
        x, iterations, _ = conjugate_gradients(self.hessian_vector_product, g, tol=self.solver_options.get("tol", 1e-10),
                                               max_iter=self.solver_options.get("max_iter", 1000))
        return x, iterations

    def _lissa_rate(self, scale: float, largest: Optional[float] = None) -> float:
        """rho: the factor by which each full-batch step shrinks the error (1 or more: none)."""
        rho = abs(1.0 - self.damping / scale)
        if largest is not None:
            rho = max(rho, abs(largest / scale - 1.0))
        return rho

    @staticmethod
    def _lissa_depth(tol: float, rho: float) -> float:
        """The depth whose bound rho^(depth + 1) is at most tol (inf when rho >= 1)."""
        if rho >= 1.0:
            return math.inf
        if rho <= 0.0:
            return 1
        return max(1, math.ceil(math.log(tol) / math.log(rho)))

    @staticmethod
    def _validate_lissa_options(options: dict) -> None:
        tol, scale, depth = options.get("tol", LISSA_TOL), options.get("scale"), options.get("depth")
        if not 0 < tol < 1:
            raise ValueError(f"lissa: tol must lie in (0, 1), got {tol}")
        if scale is not None and not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"lissa: scale must be a finite number > 0 or None, got {scale}")
        if depth is not None and not depth >= 0:
            raise ValueError(f"lissa: depth must be an integer >= 0 or None, got {depth}")

    def _solve_lissa(self, g: Tensor) -> Tuple[Tensor, int]:
        tol = float(self.solver_options.get("tol", LISSA_TOL))
        largest = None
        if self.solver_options.get("scale") is None:
            largest = self.largest_eigenvalue()
            scale = LISSA_SCALE_FACTOR * largest
        else:
            scale = float(self.solver_options["scale"])
        needed = self._lissa_depth(tol, self._lissa_rate(scale, largest))
        if self.solver_options.get("depth") is None:
            depth = int(min(needed, LISSA_MAX_DEPTH))
        else:
            depth = int(self.solver_options["depth"])
        repeats = int(self.solver_options.get("repeats", 1))
        batch_size = self.solver_options.get("batch_size")
        generator = torch.Generator(device="cpu").manual_seed(int(self.solver_options.get("seed", 0)))
        self._lissa_settings = dict(scale=scale, depth=depth, tol=tol)
        self._lissa_largest = largest
        estimates = []
        for _ in range(repeats):
            x = g.clone()
            for step in range(depth):
                rows = None
                if batch_size is not None and batch_size < self.count:
                    rows = torch.randint(0, self.count, (batch_size,), generator=generator).to(g.device)
                # x <- g + (I - H / scale) x: converges to scale * H^-1 g when scale > lambda_max(H) / 2
                x = g + x - self.hessian_vector_product(x, rows) / scale
                if not torch.isfinite(x).all() or x.norm() > 1e8 * (g.norm() + 1e-300):
                    largest = self.largest_eigenvalue()
                    raise RuntimeError(
                        f"lissa diverged at step {step + 1} with scale={scale}: the recursion needs scale > "
                        f"lambda_max(H) / 2 = {largest / 2:.4g}; scale={2 * largest:.4g} would work"
                    )
            estimates.append(x / scale)
        return torch.stack(estimates).mean(0), depth * repeats

    def _check_lissa(self, residual: float) -> None:
        """Warns (or raises, with ``strict``) when the relative residual is above ``tol``."""
        settings = self._lissa_settings
        tol, scale, depth = settings["tol"], settings["scale"], settings["depth"]
        if residual <= tol:
            return
        largest = self._lissa_largest if self._lissa_largest is not None else self.largest_eigenvalue()
        needed = self._lissa_depth(tol, self._lissa_rate(scale, largest))
        best_scale = LISSA_SCALE_FACTOR * largest
        best = self._lissa_depth(tol, self._lissa_rate(best_scale, largest))
        message = f"lissa: the relative residual |H s - g| / |g| = {residual:.3g} is above tol={tol:g} after depth={depth} at scale={scale:.4g}"
        batch_size = self.solver_options.get("batch_size")
        if batch_size is not None and batch_size < self.count:
            message += (
                f"; minibatch LiSSA (batch_size={batch_size} of {self.count}) is stochastic and its residual "
                f"has a floor from its sampling noise: more repeats (now {self.solver_options.get('repeats', 1)}) or full batches "
                "(batch_size=None) are needed"
            )
            if depth < needed:
                message += f", and depth={needed} (the full-batch bound at this scale)"
        elif math.isinf(best):
            message += f"; with damping={self.damping} no depth is guaranteed to reach it: use a positive damping or method='cg'"
        elif depth < needed:
            message += f"; depth={needed} would reach it at this scale"
            if best < needed:
                message += f" (or scale={best_scale:.4g}, {LISSA_SCALE_FACTOR:g} lambda_max(H), with depth={best})"
            if needed > LISSA_MAX_DEPTH and self.solver_options.get("depth") is None:
                message += f"; that is above the cap on the default depth, {LISSA_MAX_DEPTH}: pass depth={needed} or use method='cg'"
        else:
            dtype = str(self._train[0][0].dtype).replace("torch.", "")
            message += (
                f"; depth is at least the bound at this scale ({needed}), so rounding in the features' dtype "
                f"({dtype}; float32 allows about 1e-6) limits it: use a larger tol, float64 features or method='exact'"
            )
        if self.solver_options.get("strict", False):
            self.s_weight = self.s_bias = None
            raise RuntimeError(message)
        warnings.warn(message, InaccurateSolveWarning, stacklevel=3)

    def largest_eigenvalue(self, iterations: int = 100) -> float:
        """lambda_max of the damped Hessian, by power iteration on Hessian-vector products."""
        generator = torch.Generator(device="cpu").manual_seed(0)
        v = torch.randn(self.num_classes, self.num_params, generator=generator, dtype=torch.float64).to(self.weight.device)
        value = 0.0
        for _ in range(iterations):
            v = v / v.norm()
            hv = self.hessian_vector_product(v)
            value = float((v * hv).sum())
            v = hv
        return value

    # ---- influence ---------------------------------------------------------------------------

    def _require_validation(self, what: str) -> None:
        if self.s_weight is None:
            raise RuntimeError(f"{what} needs s_val: call fit(...) then set_validation(features, labels)")

    def up(self, features: Tensor, labels: Tensor) -> Tensor:
        """I_up (N,) of samples (h, y): removing sample i changes the validation loss by -I_up[i] / n.
        Differentiable in ``features``."""
        self._require_validation("up")
        self._checked(features.detach(), labels, "up")
        return influence(features, labels, self.weight, self.bias, self.s_weight, self.s_bias)

    def aug(self, features: Tensor, features_aug: Tensor, labels: Tensor) -> Tensor:
        """I_aug (N,) = I_up(augmented) - I_up(original): replacing sample i by its augmentation
        changes the validation loss by +I_aug[i] / n, so a good augmentation has I_aug < 0."""
        if features_aug.shape != features.shape:
            raise ValueError(f"aug: features_aug must have the shape of features {tuple(features.shape)}, got {tuple(features_aug.shape)}")
        return self.up(features_aug, labels) - self.up(features, labels)


def solver_costs(num_classes: int, num_features: int, *, bias: bool = True, max_iter: int = 1000, n: int = 0,
                 feature_bytes: int = 4, ranks: int = 1) -> dict:
    """What fitting the engine and one solve cost, by method, for K = ``num_classes``, D =
    ``num_features`` and (where given) N = ``n`` training samples split over ``ranks`` processes:

    - exact: accumulating sum_i (diag(p_i) - p_i p_i^T) kron h~_i h~_i^T costs (K P)^2 + K P^2
      multiply-adds per sample (the GEMM of the outer products and the diagonal blocks), the
      Cholesky factorisation (K P)^3 / 6 once, and the float64 Hessian (K P)^2 * 8 bytes on every
      rank, all-reduced once;
    - cg: one Hessian-vector product costs 2 K D multiply-adds per sample (two GEMMs), and
      ``cg_iterations`` = min(K P, max_iter) of them bound a solve (cg's exact-arithmetic bound);
      each rank keeps its N / ranks features (``feature_bytes`` each) and float64 softmax
      outputs, and each product all-reduces K P float64 values;
    - influence (the op): scoring one sample costs 2 K D multiply-adds (the logits and s_val . grad).

    P = D + 1 with a bias. ``all_reduce_bytes`` is the payload; a ring all-reduce sends and receives
    2 (ranks - 1) / ranks times it per rank.
    """
    k, d = int(num_classes), int(num_features)
    p = d + (1 if bias else 0)
    size = k * p
    iterations = min(size, int(max_iter))
    shard = -(-int(n) // max(1, int(ranks)))
    return {
        "K": k, "D": d, "N": int(n), "ranks": int(ranks), "params": size,
        "exact_macs_per_sample": size * size + k * p * p, "exact_factor_macs": size ** 3 / 6,
        "exact_bytes": size * size * 8, "exact_all_reduce_bytes": size * size * 8,
        "cg_hvp_macs_per_sample": 2 * k * d, "cg_iterations": iterations, "cg_macs_per_sample": iterations * 2 * k * d,
        "cg_bytes_per_rank": shard * (d * int(feature_bytes) + 8 * k), "cg_all_reduce_bytes": size * 8,
        "influence_macs_per_sample": 2 * k * d,
    }


def _process_group(distributed):
    """None (no communication) for False; the default group for True; else the group given."""
    if distributed is False or distributed is None:
        return None
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise RuntimeError("distributed: torch.distributed is not initialised; call torch.distributed.init_process_group "
                           "(infaug.distributed.setup() under torchrun) first, or pass distributed=False")
    return torch.distributed.group.WORLD if distributed is True else distributed


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``model`` (in module order)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    return linears[-1]


def last_layer_features(model: nn.Module, inputs: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Runs ``model`` on ``inputs`` and returns (features, weight, bias): the input of its last
    ``nn.Linear`` layer, whose output must be the model's output, and that layer's parameters."""
    last = last_linear(model)
    captured = {}

    def hook(module, args, output):
        captured["features"], captured["output"] = args[0], output

    handle = last.register_forward_hook(hook)
    try:
        output = model(inputs)
    finally:
        handle.remove()
    if "output" not in captured or captured["output"] is not output:
        raise ValueError(f"the last nn.Linear of {type(model).__name__} does not produce the model's output")
    return captured["features"], last.weight, last.bias
