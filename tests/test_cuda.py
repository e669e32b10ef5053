"""CUDA against CPU on the same inputs, the deterministic mode, and half precision (issue 4).
Skipped where no GPU is visible; the rest of the suite also runs on CUDA through the `device`
fixture."""

import pytest
import torch

import infaug
from infaug import reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PADDINGS = ["zeros", "border", "reflection"]


def params(n, c, h, w, dtype=torch.float64, seed=0, strength=0.3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    theta_w = torch.tensor([1.0, 0, 0, 1], dtype=dtype).view(1, 4, 1, 1) + strength * torch.randn(n, 4, h, w, generator=g, dtype=dtype)
    theta_b = strength * torch.randn(n, 2, h, w, generator=g, dtype=dtype)
    color_w = torch.eye(c, dtype=dtype).expand(n, c, c) + 0.2 * torch.randn(n, c, c, generator=g, dtype=dtype)
    color_b = 0.2 * torch.randn(n, c, generator=g, dtype=dtype)
    return [x, theta_w, theta_b, color_w, color_b]


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (3, 1, 19, 45), (1, 5, 70, 9)], ids=str)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("smooth", [1, 3, 7])
def test_cuda_agrees_with_cpu(shape, padding_mode, align_corners, smooth):
    cpu = [t.requires_grad_() for t in params(*shape)]
    gpu = [t.detach().cuda().requires_grad_() for t in cpu]
    options = dict(smooth=smooth, align_corners=align_corners, padding_mode=padding_mode)
    for op, count in [("warp", 3), ("augment", 5)]:
        out_cpu = getattr(infaug, op)(*cpu[:count], **options)
        out_gpu = getattr(infaug, op)(*gpu[:count], **options)
        torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=1e-12, rtol=1e-10)
        grad = torch.randn_like(out_cpu)
        for a, b in zip(torch.autograd.grad(out_gpu, gpu[:count], grad.cuda()), torch.autograd.grad(out_cpu, cpu[:count], grad)):
            torch.testing.assert_close(a.cpu(), b, atol=1e-10, rtol=1e-8)


def test_influence_cuda_agrees_with_cpu():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(300, 40, generator=g, dtype=torch.float64).requires_grad_()
    y = torch.randint(0, 7, (300,), generator=g)
    W, S = torch.randn(7, 40, generator=g, dtype=torch.float64), torch.randn(7, 40, generator=g, dtype=torch.float64)
    b, t = torch.randn(7, generator=g, dtype=torch.float64), torch.randn(7, generator=g, dtype=torch.float64)
    hc = h.detach().cuda().requires_grad_()
    out, out_c = infaug.influence(h, y, W, b, S, t), infaug.influence(hc, y.cuda(), W.cuda(), b.cuda(), S.cuda(), t.cuda())
    torch.testing.assert_close(out_c.cpu(), out)
    torch.testing.assert_close(torch.autograd.grad(out_c.sum(), hc)[0].cpu(), torch.autograd.grad(out.sum(), h)[0])


def test_deterministic_mode_is_bitwise_reproducible_and_accurate():
    args = [t.float().cuda().requires_grad_() for t in params(64, 3, 32, 32, strength=0.6)][:3]
    grad = torch.randn(64, 3, 32, 32, device="cuda")
    default = torch.autograd.grad(infaug.warp(*args), args, grad)
    torch.use_deterministic_algorithms(True)
    try:
        runs = [torch.autograd.grad(infaug.warp(*args), args, grad) for _ in range(3)]
    finally:
        torch.use_deterministic_algorithms(False)
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            assert torch.equal(a, b)
    for a, b in zip(runs[0], default):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("op", ["warp", "augment"])
def test_low_precision_error_within_twice_torch(dtype, op):
    """flash-attention's rule: our error in low precision at most twice that of the plain torch
    path in the same dtype, both against float64."""
    count = 3 if op == "warp" else 5
    exact = [t.cuda() for t in params(16, 3, 32, 32)][:count]
    low = [t.to(dtype) for t in exact]
    truth = getattr(reference, op)(*[t.double() for t in low])
    ours = getattr(infaug, op)(*low).double()
    theirs = getattr(reference, op)(*low).double()
    assert (ours - truth).abs().max() <= 2 * (theirs - truth).abs().max() + 1e-6


def test_deterministic_mode_with_non_finite_gradients():
    args = [t.float().cuda().requires_grad_() for t in params(8, 3, 16, 16)][:3]
    grad = torch.randn(8, 3, 16, 16, device="cuda")
    grad[0, 1, 3, 4] = float("nan")
    grad[2, 0, 7, 7] = float("inf")
    torch.use_deterministic_algorithms(True)
    try:
        runs = [torch.autograd.grad(infaug.warp(*args), args[0], grad)[0] for _ in range(3)]
    finally:
        torch.use_deterministic_algorithms(False)
    for run in runs[1:]:
        assert torch.equal(run.view(torch.int32), runs[0].view(torch.int32))  # bitwise, NaN included
    assert torch.isfinite(runs[0][1]).all()  # images with finite gradients stay finite


def test_augment_with_many_channels():
    """Past what the fused colour transform keeps in shared memory, augment warps then mixes."""
    args = [t.cuda() for t in params(2, 300, 6, 5)]
    torch.testing.assert_close(infaug.augment(*args), reference.augment(*args))


def test_huge_smooth_is_clamped_to_the_image():
    args = [t.cuda() for t in params(2, 3, 28, 28)][:3]
    torch.testing.assert_close(infaug.warp(*args, smooth=101), reference.warp(*args, smooth=101))
