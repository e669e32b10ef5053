"""infaug.warp and infaug.augment against infaug.reference, their gradients,
their registration with torch (opcheck, compile) and their errors."""

import pytest
import torch
import torch.nn.functional as F

import infaug
from infaug import reference

PADDINGS = ["zeros", "border", "reflection"]
# float32: both paths round differently inside floor/bilinear weights.
TOLERANCE = {torch.float32: dict(atol=2e-5, rtol=1e-5), torch.float64: dict(atol=1e-12, rtol=1e-10)}


def identity_theta(n: int, h: int, w: int, **kw) -> torch.Tensor:
    return torch.tensor([1.0, 0.0, 0.0, 1.0], **kw).view(1, 4, 1, 1).repeat(n, 1, h, w)


def random_params(n, c, h, w, *, strength=0.3, seed=0, dtype=torch.float64, device="cpu"):
    """Random images and a perturbed identity flow, plus colour parameters near identity."""
    g = torch.Generator().manual_seed(seed)
    kw = dict(dtype=dtype, device=device)
    x = torch.randn(n, c, h, w, generator=g).to(**kw)
    theta_w = identity_theta(n, h, w, **kw) + strength * torch.randn(n, 4, h, w, generator=g).to(**kw)
    theta_b = strength * torch.randn(n, 2, h, w, generator=g).to(**kw)
    color_w = torch.eye(c, **kw).expand(n, c, c) + 0.2 * torch.randn(n, c, c, generator=g).to(**kw)
    color_b = 0.2 * torch.randn(n, c, generator=g).to(**kw)
    return x, theta_w, theta_b, color_w, color_b


# C in {1, 3, 5}, non-square, one-pixel-wide and one-pixel-high images (no pair of taps fits in a
# row: the kernels take their general path), and a size with a partial vector at the end.
SHAPES = [(1, 1, 8, 8), (3, 3, 7, 11), (2, 5, 12, 5), (4, 3, 16, 16), (2, 3, 5, 1), (2, 2, 1, 6), (1, 1, 37, 41)]


# ---- agreement with the reference ------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("smooth", [1, 3, 5])
def test_warp_matches_reference(shape, padding_mode, align_corners, smooth, dtype, device):
    x, theta_w, theta_b, _, _ = random_params(*shape, dtype=dtype, device=device, seed=sum(shape))
    options = dict(smooth=smooth, align_corners=align_corners, padding_mode=padding_mode)
    torch.testing.assert_close(
        infaug.warp(x, theta_w, theta_b, **options),
        reference.warp(x, theta_w, theta_b, **options),
        **TOLERANCE[dtype],
    )


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_augment_matches_reference(shape, padding_mode, dtype, device):
    args = random_params(*shape, dtype=dtype, device=device, seed=1)
    options = dict(smooth=3, align_corners=False, padding_mode=padding_mode)
    torch.testing.assert_close(
        infaug.augment(*args, **options), reference.augment(*args, **options), **TOLERANCE[dtype]
    )


@pytest.mark.parametrize("op", ["warp", "augment"])
@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_gradients_match_reference(op, padding_mode, device):
    # float64: in float32 a point landing within rounding of a pixel boundary may legitimately take
    # the neighbouring cell's slope in one implementation and not the other.
    args = [t.requires_grad_() for t in random_params(3, 3, 9, 13, device=device, seed=7)]
    n_inputs = 3 if op == "warp" else 5
    options = dict(smooth=3, align_corners=False, padding_mode=padding_mode)
    out = getattr(infaug, op)(*args[:n_inputs], **options)
    expected = getattr(reference, op)(*args[:n_inputs], **options)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, args[:n_inputs], grad_out)
    expected_grads = torch.autograd.grad(expected, args[:n_inputs], grad_out)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, atol=1e-11, rtol=1e-9)


@pytest.mark.parametrize("op", ["warp", "augment"])
def test_empty_batch(op, dtype, device):
    args = [t.requires_grad_() for t in random_params(0, 3, 8, 8, dtype=dtype, device=device)]
    n_inputs = 3 if op == "warp" else 5
    out = getattr(infaug, op)(*args[:n_inputs])
    assert out.shape == (0, 3, 8, 8)
    grads = torch.autograd.grad(out.sum(), args[:n_inputs])
    assert [g.shape for g in grads] == [a.shape for a in args[:n_inputs]]


# ---- gradcheck -------------------------------------------------------------------------------


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("smooth", [1, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warp_gradcheck(padding_mode, align_corners, smooth, seed, device):
    args = [t.requires_grad_() for t in random_params(2, 2, 5, 6, seed=seed, device=device)[:3]]
    assert torch.autograd.gradcheck(
        lambda *a: infaug.warp(*a, smooth=smooth, align_corners=align_corners, padding_mode=padding_mode),
        args,
    )


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_augment_gradcheck(padding_mode, seed, device):
    args = [t.requires_grad_() for t in random_params(2, 3, 5, 4, seed=seed, device=device)]
    assert torch.autograd.gradcheck(lambda *a: infaug.augment(*a, padding_mode=padding_mode), args)


@pytest.mark.parametrize("needed", [(True, False, False), (False, True, False), (False, False, True)])
def test_only_required_gradients(needed, device):
    """Each gradient on its own equals the same gradient computed with all of them."""
    args = random_params(2, 3, 6, 7, device=device, seed=3)[:3]
    grad_y = torch.randn(2, 3, 6, 7, dtype=torch.float64, device=device)
    all_grads = torch.ops.infaug._warp_backward(grad_y, *args, 3, False, "zeros", [True] * 3)
    some = torch.ops.infaug._warp_backward(grad_y, *args, 3, False, "zeros", list(needed))
    for need, full, partial in zip(needed, all_grads, some):
        if need:
            torch.testing.assert_close(partial, full, atol=0, rtol=0)
        else:
            assert partial.numel() == 0


# ---- properties of the math ------------------------------------------------------------------


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("smooth", [1, 3, 5])
def test_identity_gives_input(padding_mode, align_corners, smooth, dtype, device):
    x = torch.randn(3, 2, 9, 14, dtype=dtype, device=device)
    theta_w = identity_theta(3, 9, 14, dtype=dtype, device=device)
    theta_b = torch.zeros(3, 2, 9, 14, dtype=dtype, device=device)
    y = infaug.warp(x, theta_w, theta_b, smooth=smooth, align_corners=align_corners, padding_mode=padding_mode)
    torch.testing.assert_close(y, x, atol=0, rtol=0)


@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
def test_constant_affine_equals_affine_grid_and_grid_sample(padding_mode, align_corners, dtype, device):
    n, c, h, w = 4, 3, 10, 13
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, c, h, w, generator=g).to(dtype=dtype, device=device)
    theta = (torch.eye(2, 3) + 0.3 * torch.randn(n, 2, 3, generator=g)).to(dtype=dtype, device=device)
    theta_w = theta[:, :, :2].reshape(n, 4, 1, 1).expand(n, 4, h, w)
    theta_b = theta[:, :, 2].reshape(n, 2, 1, 1).expand(n, 2, h, w)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=align_corners)
    expected = F.grid_sample(x, grid, padding_mode=padding_mode, align_corners=align_corners)
    got = infaug.warp(x, theta_w, theta_b, smooth=1, align_corners=align_corners, padding_mode=padding_mode)
    torch.testing.assert_close(got, expected, **TOLERANCE[dtype])


def test_translation_by_one_pixel(device):
    x = torch.randn(2, 3, 8, 10, dtype=torch.float64, device=device)
    theta_w = identity_theta(2, 8, 10, dtype=torch.float64, device=device)
    theta_b = torch.zeros(2, 2, 8, 10, dtype=torch.float64, device=device)
    theta_b[:, 1] = 2 / 8  # one pixel down in grid units: row i samples row i + 1
    y = infaug.warp(x, theta_w, theta_b)
    torch.testing.assert_close(y[:, :, :-1], x[:, :, 1:], atol=1e-12, rtol=0)
    assert (y[:, :, -1] == 0).all()  # zeros padding below the last row


# ---- layouts ---------------------------------------------------------------------------------


def test_non_contiguous_and_channels_last(dtype, device):
    x, theta_w, theta_b, color_w, color_b = random_params(3, 3, 12, 9, dtype=dtype, device=device, seed=4)
    layouts = {
        "channels_last": lambda t: t.contiguous(memory_format=torch.channels_last),
        "transposed": lambda t: t.transpose(2, 3).contiguous().transpose(2, 3),
        "strided": lambda t: torch.repeat_interleave(t, 2, dim=3)[..., ::2],
    }
    expected = reference.augment(x, theta_w, theta_b, color_w, color_b)
    for name, layout in layouts.items():
        args = [layout(x), layout(theta_w), layout(theta_b), color_w.transpose(1, 2).contiguous().transpose(1, 2), color_b]
        assert not args[0].is_contiguous(), name
        torch.testing.assert_close(infaug.augment(*args), expected, **TOLERANCE[dtype], msg=name)
        # Gradients come out with the inputs' shapes, whatever their layout.
        leaves = [a.detach().requires_grad_() for a in args]
        grads = torch.autograd.grad(infaug.augment(*leaves).square().sum(), leaves)
        expected_grads = torch.autograd.grad(reference.augment(*leaves).square().sum(), leaves)
        for got, want in zip(grads, expected_grads):
            torch.testing.assert_close(got, want, atol=1e-3 if dtype == torch.float32 else 1e-10, rtol=1e-4)


# ---- robustness ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES + [(2, 3, 32, 32), (2, 4, 9, 2)], ids=str)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("smooth", [1, 3])
def test_float32_gradients_match_float64_reference(shape, padding_mode, smooth, device):
    """The float32 kernels (vectorised gathers, grad_x by pairs of taps, one and three channels
    unrolled) against the float64 reference: no point of these flows lies within float32 rounding
    of a pixel boundary, so every gradient agrees to float32 precision."""
    x, theta_w, theta_b, _, _ = random_params(*shape, seed=3, device=device)
    grad_y = torch.randn(shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64).to(device)
    leaves64 = [t.clone().requires_grad_() for t in (x, theta_w, theta_b)]
    leaves32 = [t.float().requires_grad_() for t in (x, theta_w, theta_b)]
    options = dict(smooth=smooth, padding_mode=padding_mode)
    want = torch.autograd.grad(reference.warp(*leaves64, **options), leaves64, grad_y)
    got = torch.autograd.grad(infaug.warp(*leaves32, **options), leaves32, grad_y.float())
    for name, g, w in zip(("x", "theta_w", "theta_b"), got, want):
        torch.testing.assert_close(g.double(), w, atol=1e-4 * w.abs().max().item(), rtol=0, msg=name)


@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_non_finite_output_gradient_stays_local(padding_mode, dtype, device):
    """An infinite or NaN gradient of the output reaches grad_x only through the taps inside the
    image, as in grid_sample: a tap outside adds nothing, not 0 * inf."""
    x, theta_w, theta_b, _, _ = random_params(3, 3, 12, 12, strength=0.5, dtype=dtype, device=device, seed=5)
    grad_y = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(6), dtype=dtype).to(device)
    grad_y[0, 1, 0, 0] = float("inf")
    grad_y[0, 2, 11, 5] = -float("inf")
    grad_y[2, 0, 6, 11] = float("nan")
    leaves = [t.clone().requires_grad_() for t in (x, theta_w, theta_b)]
    options = dict(smooth=3, padding_mode=padding_mode)
    got = torch.autograd.grad(infaug.warp(*leaves, **options), leaves[0], grad_y)[0]
    want = torch.autograd.grad(reference.warp(*leaves, **options), leaves[0], grad_y)[0]
    torch.testing.assert_close(got, want, equal_nan=True, **TOLERANCE[dtype])
    assert torch.isfinite(got[1]).all()  # the image with a finite gradient is untouched


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e30])
@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_non_finite_parameters_do_not_crash(bad, padding_mode, device):
    x, theta_w, theta_b, _, _ = random_params(2, 3, 8, 8, dtype=torch.float32, device=device)
    theta_w = theta_w.clone()
    theta_w[0, :, 2, 3] = bad
    theta_b = theta_b.clone()
    theta_b[1, 0, 5, 5] = bad
    leaves = [x.requires_grad_(), theta_w.requires_grad_(), theta_b.requires_grad_()]
    y = infaug.warp(*leaves, smooth=3, padding_mode=padding_mode)
    y.sum().backward()
    assert y.shape == x.shape
    # Pixels whose smoothing windows never see the bad value are unaffected.
    clean = infaug.warp(x.detach()[:1, :, :, :], theta_w.detach()[:1], theta_b.detach()[:1], smooth=3,
                        padding_mode=padding_mode)
    assert torch.isfinite(clean[..., 6:, :]).all()


@pytest.mark.parametrize("padding_mode", PADDINGS)
def test_non_finite_pixels_stay_local(padding_mode, dtype, device):
    """A NaN or infinite pixel reaches exactly the outputs whose taps include it, as in grid_sample."""
    x, theta_w, theta_b, _, _ = random_params(2, 3, 16, 16, dtype=dtype, device=device, seed=9)
    x = x.clone()
    x[0, 1, 4, 7] = float("nan")
    x[1, 0, 9, 0] = float("inf")
    x[1, 2, 15, 15] = float("nan")
    options = dict(smooth=3, padding_mode=padding_mode)
    got = infaug.warp(x, theta_w, theta_b, **options)
    want = reference.warp(x, theta_w, theta_b, **options)
    torch.testing.assert_close(got, want, equal_nan=True, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype_name, tolerance", [("float64", 1e-10), ("float32", 1e-4)])
def test_generic_code_path_agrees(generic_and_native, dtype_name, tolerance):
    """The kernels compiled for plain x86-64 (ATEN_CPU_CAPABILITY=default) give the same results as
    the native ones (in float32 those are the AVX2 gathers), values and gradients."""
    code = (
        "import torch, infaug;"
        "torch.manual_seed(0);"
        f"dt = torch.{dtype_name};"
        # drawn in float64: torch's float32 sampler itself depends on ATEN_CPU_CAPABILITY
        "r = lambda *shape: torch.randn(*shape, dtype=torch.float64);"
        "x = r(3, 3, 17, 13).to(dt);"
        "tw = (torch.tensor([1.,0,0,1], dtype=torch.float64).view(1,4,1,1) + 0.3*r(3,4,17,13)).to(dt);"
        "tb = (0.3*r(3,2,17,13)).to(dt);"
        "args = [t.requires_grad_() for t in (x, tw, tb)];"
        "y = infaug.warp(*args, padding_mode='reflection');"
        "g = torch.autograd.grad(y.square().sum(), args);"
        "torch.save([y.detach(), *g], __import__('sys').argv[1])"
    )
    results = generic_and_native(code)
    for generic, native in zip(*results):
        scale = native.abs().max().item()
        torch.testing.assert_close(generic, native, atol=tolerance * scale, rtol=tolerance)


def test_deterministic(device):
    """Bitwise-identical results run to run (on CUDA, in the deterministic mode)."""
    args = [t.requires_grad_() for t in random_params(8, 3, 16, 16, dtype=torch.float32, device=device)]
    runs = []
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(device != "cpu" or previous)
    try:
        for _ in range(2):
            y = infaug.augment(*args)
            runs.append([y, *torch.autograd.grad(y.square().sum(), args)])
    finally:
        torch.use_deterministic_algorithms(previous)
    for first, second in zip(*runs):
        assert torch.equal(first, second)


# ---- registration with torch -----------------------------------------------------------------


@pytest.mark.parametrize("op", ["warp", "augment"])
def test_opcheck(op, device):
    n_inputs = 3 if op == "warp" else 5
    args = random_params(2, 3, 6, 5, device=device)[:n_inputs]
    for requires_grad in [False, True]:
        inputs = [a.clone().requires_grad_(requires_grad) for a in args]
        torch.library.opcheck(getattr(torch.ops.infaug, op), (*inputs, 3, False, "border"))


def test_opcheck_backward_ops(device):
    x, theta_w, theta_b, color_w, color_b = random_params(2, 3, 6, 5, device=device)
    grad = torch.randn_like(x)
    torch.library.opcheck(torch.ops.infaug._warp_backward, (grad, x, theta_w, theta_b, 3, False, "zeros", [True, False, True]))
    torch.library.opcheck(
        torch.ops.infaug._augment_backward,
        (grad, x, theta_w, theta_b, color_w, color_b, 5, True, "reflection", [False, True, True, True, False]),
    )


def test_compile_fullgraph_matches_eager(device):
    torch._dynamo.reset()
    args = [t.requires_grad_() for t in random_params(2, 3, 8, 8, dtype=torch.float32, device=device)]

    def loss(x, theta_w, theta_b, color_w, color_b):
        return infaug.augment(x, theta_w, theta_b, color_w, color_b, smooth=5, padding_mode="border").square().mean()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    for got, want in zip(torch.autograd.grad(compiled(*args), args), torch.autograd.grad(loss(*args), args)):
        torch.testing.assert_close(got, want)


# ---- bad input -------------------------------------------------------------------------------


def _good(device="cpu"):
    return random_params(2, 3, 6, 5, dtype=torch.float32, device=device)


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda a: {"x": a["x"][0]}, ValueError, r"x must have shape \(N, C, H, W\), got \(3, 6, 5\)"),
        (lambda a: {"theta_w": a["theta_w"][:, :3]}, ValueError, r"theta_w must have shape \(N, 4, H, W\) = \(2, 4, 6, 5\), got \(2, 3, 6, 5\)"),
        (lambda a: {"theta_b": a["theta_b"][:1]}, ValueError, r"theta_b must have shape \(N, 2, H, W\) = \(2, 2, 6, 5\), got \(1, 2, 6, 5\)"),
        (lambda a: {"theta_w": a["theta_w"][..., :4]}, ValueError, r"theta_w must have shape .* got \(2, 4, 6, 4\)"),
        (lambda a: {"theta_b": a["theta_b"][:, :, :5]}, ValueError, r"theta_b must have shape .* got \(2, 2, 5, 5\)"),
        (lambda a: {"x": a["x"].double()}, TypeError, r"theta_w must have the same dtype as x \(torch.float64\), got torch.float32"),
        (lambda a: {"theta_b": a["theta_b"].double()}, TypeError, r"theta_b must have the same dtype as x \(torch.float32\), got torch.float64"),
        (lambda a: {"x": a["x"].long()}, TypeError, r"x must be a floating point tensor, got torch.int64"),
        (lambda a: {"theta_w": a["theta_w"].to(torch.int32)}, TypeError, r"theta_w must have the same dtype as x"),
        (lambda a: {"x": a["x"].to(torch.float16), "theta_w": a["theta_w"].half(), "theta_b": a["theta_b"].half()},
         TypeError, r"on cpu supports x of dtype torch.float32, torch.float64, got torch.float16"),
        (lambda a: {"theta_w": a["theta_w"].to("meta")}, ValueError, r"theta_w must be on the same device as x \(cpu\), got meta"),
    ],
)
def test_warp_bad_input(change, error, message):
    args = dict(zip(["x", "theta_w", "theta_b"], _good()[:3]))
    args.update(change(args))
    with pytest.raises(error, match=message):
        infaug.warp(**args)


@pytest.mark.parametrize("smooth", [0, -3, 2, 4])
def test_bad_smooth(smooth):
    with pytest.raises(ValueError, match=f"smooth must be a positive odd integer, got {smooth}"):
        infaug.warp(*_good()[:3], smooth=smooth)


def test_bad_padding_mode():
    with pytest.raises(ValueError, match=r"padding_mode must be one of 'zeros', 'border', 'reflection', got 'wrap'"):
        infaug.warp(*_good()[:3], padding_mode="wrap")


@pytest.mark.parametrize(
    "index, bad, message",
    [
        (3, lambda t: t[:, :2], r"color_w must have shape \(N, C, C\) = \(2, 3, 3\), got \(2, 2, 3\)"),
        (4, lambda t: t[:, :, None], r"color_b must have shape \(N, C\) = \(2, 3\), got \(2, 3, 1\)"),
        (4, lambda t: t.double(), r"color_b must have the same dtype as x"),
    ],
)
def test_augment_bad_colour(index, bad, message):
    args = list(_good())
    args[index] = bad(args[index])
    with pytest.raises((ValueError, TypeError), match=message):
        infaug.augment(*args)


def test_backward_bad_grad_output():
    x, theta_w, theta_b, _, _ = _good()
    with pytest.raises(ValueError, match=r"grad_output must have shape \(N, C, H, W\) = \(2, 3, 6, 5\), got \(2, 3, 6, 4\)"):
        torch.ops.infaug._warp_backward(x[..., :4], x, theta_w, theta_b, 3, False, "zeros", [True] * 3)
