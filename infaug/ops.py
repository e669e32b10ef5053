"""The thin layer over ``torch.ops.infaug``: fake kernels (for torch.compile and meta tensors),
autograd, and the documented public functions. The kernels themselves are C++/CUDA (csrc/)."""

from typing import Any, Optional

import torch
from torch import Tensor

from infaug._extension import load

__all__ = ["augment", "influence", "warp"]

_C = load()  # registers torch.ops.infaug.* before anything below refers to them
_ops = torch.ops.infaug


def _grad_like(tensor: Tensor, needed: bool) -> Tensor:
    # A gradient that is not asked for is an empty (0,) tensor, as the kernels return it.
    return tensor.new_empty(tensor.shape if needed else (0,))


def _check_like_x(op: str, name: str, tensor: Tensor, x: Tensor) -> None:
    first = "features" if op == "influence" else "x"
    # The compiled kernels check everything; a fake kernel runs instead of them whenever one input
    # is a meta or fake tensor, so it repeats the checks that do not need data (torch.compile then
    # reports the error at trace time, with the same message).
    if tensor.device != x.device:
        raise ValueError(f"infaug.{op}: {name} must be on the same device as {first} ({x.device}), got {tensor.device}")
    if tensor.dtype != x.dtype:
        raise TypeError(f"infaug.{op}: {name} must have the same dtype as {first} ({x.dtype}), got {tensor.dtype}")


def _check_fake(op: str, x: Tensor, expected: dict, smooth: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"infaug.{op}: x must have shape (N, C, H, W), got {tuple(x.shape)}")
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"infaug.{op}: {name} must have shape {shape}, got {tuple(tensor.shape)}")
        _check_like_x(op, name, tensor, x)
    if smooth < 1 or smooth % 2 == 0:
        raise ValueError(f"infaug.{op}: smooth must be a positive odd integer, got {smooth}")


def _expected_shapes(x: Tensor, theta_w: Tensor, theta_b: Tensor, *colour: Tensor) -> dict:
    n, c, h, w = x.shape if x.dim() == 4 else (0, 0, 0, 0)
    shapes = {"theta_w": (theta_w, (n, 4, h, w)), "theta_b": (theta_b, (n, 2, h, w))}
    if colour:
        shapes.update(color_w=(colour[0], (n, c, c)), color_b=(colour[1], (n, c)))
    return shapes


# ---- warp ------------------------------------------------------------------------------------


@torch.library.register_fake("infaug::warp")
def _warp_fake(x, theta_w, theta_b, smooth=3, align_corners=False, padding_mode="zeros"):
    _check_fake("warp", x, _expected_shapes(x, theta_w, theta_b), smooth)
    return x.new_empty(x.shape)


@torch.library.register_fake("infaug::_warp_backward")
def _warp_backward_fake(grad_y, x, theta_w, theta_b, smooth, align_corners, padding_mode, output_mask):
    return tuple(_grad_like(t, need) for t, need in zip((x, theta_w, theta_b), output_mask))


def _warp_setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
    x, theta_w, theta_b, smooth, align_corners, padding_mode = inputs
    ctx.save_for_backward(x, theta_w, theta_b)
    ctx.options = (smooth, align_corners, padding_mode)


def _warp_backward(ctx: Any, grad_y: Tensor):
    mask = list(ctx.needs_input_grad[:3])
    grads = _ops._warp_backward(grad_y, *ctx.saved_tensors, *ctx.options, mask)
    return (*(g if need else None for g, need in zip(grads, mask)), None, None, None)


torch.library.register_autograd("infaug::warp", _warp_backward, setup_context=_warp_setup_context)


# ---- augment ---------------------------------------------------------------------------------


@torch.library.register_fake("infaug::augment")
def _augment_fake(x, theta_w, theta_b, color_w, color_b, smooth=3, align_corners=False, padding_mode="zeros"):
    _check_fake("augment", x, _expected_shapes(x, theta_w, theta_b, color_w, color_b), smooth)
    return x.new_empty(x.shape)


@torch.library.register_fake("infaug::_augment_backward")
def _augment_backward_fake(
    grad_out, x, theta_w, theta_b, color_w, color_b, smooth, align_corners, padding_mode, output_mask
):
    inputs = (x, theta_w, theta_b, color_w, color_b)
    return tuple(_grad_like(t, need) for t, need in zip(inputs, output_mask))


def _augment_setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
    *tensors, smooth, align_corners, padding_mode = inputs
    ctx.save_for_backward(*tensors)
    ctx.options = (smooth, align_corners, padding_mode)


def _augment_backward(ctx: Any, grad_out: Tensor):
    mask = list(ctx.needs_input_grad[:5])
    grads = _ops._augment_backward(grad_out, *ctx.saved_tensors, *ctx.options, mask)
    return (*(g if need else None for g, need in zip(grads, mask)), None, None, None)


torch.library.register_autograd("infaug::augment", _augment_backward, setup_context=_augment_setup_context)


# ---- public functions ------------------------------------------------------------------------


def warp(
    x: Tensor,
    theta_w: Tensor,
    theta_b: Tensor,
    *,
    smooth: int = 3,
    align_corners: bool = False,
    padding_mode: str = "zeros",
) -> Tensor:
    r"""Warps images by a smoothed per-pixel affine flow field, in one fused kernel.

    For every pixel, with (u, v) the base grid of ``affine_grid``:

    .. math::
        s = (u, v) + \mathrm{box}_{k}\big(A (u, v) + t - (u, v)\big), \qquad
        y = \mathrm{grid\_sample}(x, s)

    where ``A = [[a, b], [c, d]]`` and ``t = (e, f)`` vary per pixel and ``box_k`` is a
    ``smooth`` x ``smooth`` average over the in-bounds neighbours. Differentiable in ``x``,
    ``theta_w`` and ``theta_b``; a gradient that is not required is not computed.

    Args:
        x: (N, C, H, W) images, float32 or float64 (also float16/bfloat16 on CUDA).
        theta_w: (N, 4, H, W) the per-pixel matrix ``[[a, b], [c, d]]`` as channels (a, b, c, d).
        theta_b: (N, 2, H, W) the per-pixel bias (e, f), in grid units (the image spans [-1, 1]).
        smooth: odd size of the box filter applied to the displacement; 1 means none.
        align_corners: as in ``torch.nn.functional.grid_sample``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``, as in ``grid_sample``.

    Returns:
        (N, C, H, W) warped images, contiguous.

    Example:
        >>> import torch, infaug
        >>> x = torch.rand(2, 3, 32, 32)
        >>> identity = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 4, 1, 1).repeat(2, 1, 32, 32)
        >>> shift = torch.zeros(2, 2, 32, 32)
        >>> shift[:, 0] = 2 / 32  # one pixel to the right
        >>> y = infaug.warp(x, identity, shift)
        >>> torch.allclose(y[..., :-1], x[..., 1:])
        True
    """
    return _ops.warp(x, theta_w, theta_b, smooth, align_corners, padding_mode)


def augment(
    x: Tensor,
    theta_w: Tensor,
    theta_b: Tensor,
    color_w: Tensor,
    color_b: Tensor,
    *,
    smooth: int = 3,
    align_corners: bool = False,
    padding_mode: str = "zeros",
) -> Tensor:
    r""":func:`warp` followed by a per-image colour transform, in one fused kernel.

    .. math::
        \mathrm{out}[n, c] = \sum_k \mathrm{color\_w}[n, c, k]\, \mathrm{warp}(x)[n, k] + \mathrm{color\_b}[n, c]

    Args:
        x, theta_w, theta_b, smooth, align_corners, padding_mode: as in :func:`warp`.
        color_w: (N, C, C) per-image colour matrix (the identity leaves colours unchanged).
        color_b: (N, C) per-image colour offset.

    Returns:
        (N, C, H, W), differentiable in all five tensors.

    Example:
        >>> import torch, infaug
        >>> x = torch.rand(4, 1, 28, 28)
        >>> identity = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 4, 1, 1).repeat(4, 1, 28, 28)
        >>> no_shift = torch.zeros(4, 2, 28, 28)
        >>> brighter = infaug.augment(x, identity, no_shift, torch.full((4, 1, 1), 1.5), torch.zeros(4, 1))
        >>> torch.allclose(brighter, 1.5 * x)
        True
    """
    return _ops.augment(x, theta_w, theta_b, color_w, color_b, smooth, align_corners, padding_mode)


# ---- influence -------------------------------------------------------------------------------


@torch.library.register_fake("infaug::influence")
def _influence_fake(features, labels, weight, bias, s_weight, s_bias):
    _check_influence_fake(features, labels, weight, bias, s_weight, s_bias)
    return features.new_empty(features.shape[:1]), features.new_empty((features.shape[0], 2 * weight.shape[0]))


@torch.library.register_fake("infaug::_influence_backward")
def _influence_backward_fake(grad_scores, projections, labels, weight, bias, s_weight, s_bias):
    return projections.new_empty((projections.shape[0], weight.shape[1]))


def _check_influence_fake(features, labels, weight, bias, s_weight, s_bias) -> None:
    if features.dim() != 2:
        raise ValueError(f"infaug.influence: features must have shape (N, D), got {tuple(features.shape)}")
    if weight.dim() != 2 or weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"infaug.influence: weight must have shape (K, D) with D = {features.shape[1]}, got {tuple(weight.shape)}"
        )
    k = weight.shape[0]
    _check_like_x("influence", "weight", weight, features)
    for name, tensor, shape in [("s_weight", s_weight, (k, features.shape[1])), ("bias", bias, (k,)), ("s_bias", s_bias, (k,))]:
        if tensor is None:
            continue
        if tuple(tensor.shape) != shape:
            raise ValueError(f"infaug.influence: {name} must have shape {shape}, got {tuple(tensor.shape)}")
        _check_like_x("influence", name, tensor, features)
    if labels.shape != features.shape[:1] or labels.dtype != torch.int64:
        raise ValueError(
            f"infaug.influence: labels must be int64 of shape ({features.shape[0]},), got {labels.dtype} {tuple(labels.shape)}"
        )


def _influence_setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
    _, labels, weight, bias, s_weight, s_bias = inputs
    # The (N, 2K) projections stand in for the (N, D) features: the backward needs no features.
    ctx.save_for_backward(output[1], labels, weight, s_weight, *(t for t in (bias, s_bias) if t is not None))
    ctx.has_bias = (bias is not None, s_bias is not None)
    ctx.set_materialize_grads(False)  # the projections' gradient stays None when they are unused


def _influence_backward(ctx: Any, grad_scores: Tensor, grad_projections: Optional[Tensor]):
    if any(ctx.needs_input_grad[2:]):
        raise RuntimeError(
            "infaug.influence is differentiable in features only; weight, bias, s_weight and s_bias "
            "must not require grad (detach them)"
        )
    projections, labels, weight, s_weight, *biases = ctx.saved_tensors
    bias = biases.pop(0) if ctx.has_bias[0] else None
    s_bias = biases.pop(0) if ctx.has_bias[1] else None
    grad = None
    if ctx.needs_input_grad[0]:
        if grad_scores is not None:
            grad = _ops._influence_backward(grad_scores, projections, labels, weight, bias, s_weight, s_bias)
        if grad_projections is not None:  # the projections are an output too: G = h [W; S]^T
            extra = grad_projections @ torch.cat([weight, s_weight])
            grad = extra if grad is None else grad + extra
    return grad, None, None, None, None, None


torch.library.register_autograd("infaug::influence", _influence_backward, setup_context=_influence_setup_context)


def influence(
    features: Tensor,
    labels: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    s_weight: Tensor,
    s_bias: Optional[Tensor],
) -> Tensor:
    r"""Up-weighting influence of each sample on the validation loss through a linear top layer
    with softmax cross-entropy, in closed form, in one fused kernel.

    .. math::
        p = \mathrm{softmax}(W h + b), \quad r = p - \mathrm{onehot}(y), \quad a = S h + t, \quad
        \mathrm{score} = -\langle r, a \rangle = -\langle s_{val}, \nabla_\theta \ell(h, y) \rangle

    The (N, K, D) per-sample gradients are never formed: one GEMM of the features against
    ``[W; S]`` and a per-row epilogue. Differentiable in ``features``.

    Args:
        features: (N, D) penultimate features h.
        labels: (N,) int64 classes in [0, K).
        weight: (K, D) the last layer's weight W; bias: (K,) its bias b, or None.
        s_weight: (K, D) and s_bias: (K,) or None: s_val = H^-1 g_val split like (W, b).

    Returns:
        (N,) scores I_up; removing sample i changes the validation loss by -I_up[i] / n.

    Example:
        >>> import torch, infaug
        >>> h, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
        >>> W, b = torch.randn(3, 8), torch.zeros(3)
        >>> S, t = torch.randn(3, 8), torch.randn(3)
        >>> scores = infaug.influence(h, y, W, b, S, t)
        >>> r = torch.softmax(h @ W.T + b, 1) - torch.nn.functional.one_hot(y, 3)
        >>> torch.allclose(scores, -(r * (h @ S.T + t)).sum(1), atol=1e-5)
        True
    """
    return _ops.influence(features, labels, weight, bias, s_weight, s_bias)[0]
