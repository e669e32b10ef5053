"""infaug.influence and LastLayerInfluence, including the check against real
retraining."""

import math
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import infaug
from infaug import LastLayerInfluence, last_layer_features, reference
from infaug.engine import InaccurateSolveWarning


def problem(n=64, d=7, k=4, *, bias=True, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    kw = dict(dtype=dtype, device=device)
    h = torch.randn(n, d, generator=g).to(**kw)
    y = torch.randint(0, k, (n,), generator=g).to(device)
    W, S = torch.randn(k, d, generator=g).to(**kw), torch.randn(k, d, generator=g).to(**kw)
    b = torch.randn(k, generator=g).to(**kw) if bias else None
    t = torch.randn(k, generator=g).to(**kw) if bias else None
    return h, y, W, b, S, t


# ---- the op ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n", [0, 1, 37])
def test_influence_matches_closed_form(bias, n, dtype, device):
    args = problem(n=n, bias=bias, dtype=dtype, device=device)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(infaug.influence(*args), reference.influence(*args), **tol)
    torch.testing.assert_close(reference.influence_per_sample(*args), reference.influence(*args), **tol)


def test_influence_is_minus_dot_with_per_sample_gradient(device):
    """scores = -<s_val, grad_theta l(z)>, the gradient taken by autograd through cross-entropy."""
    h, y, W, b, S, t = problem(n=5, device=device)
    for i in range(5):
        Wg, bg = W.clone().requires_grad_(), b.clone().requires_grad_()
        gW, gb = torch.autograd.grad(F.cross_entropy(F.linear(h[i : i + 1], Wg, bg), y[i : i + 1]), (Wg, bg))
        expected = -((gW * S).sum() + (gb * t).sum())
        torch.testing.assert_close(infaug.influence(h, y, W, b, S, t)[i], expected)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_influence_gradcheck(bias, seed, device):
    h, y, W, b, S, t = problem(n=9, d=5, k=3, bias=bias, device=device, seed=seed)
    h.requires_grad_()
    assert torch.autograd.gradcheck(lambda f: infaug.influence(f, y, W, b, S, t), (h,))
    # and the gradient equals the closed form
    grad = torch.autograd.grad(infaug.influence(h, y, W, b, S, t).sum(), h)[0]
    p = torch.softmax(F.linear(h, W, b), 1)
    a = F.linear(h, S, t)
    r = p - F.one_hot(y, 3)
    expected = -(r @ S + (p * (a - (p * a).sum(1, keepdim=True))) @ W)
    torch.testing.assert_close(grad, expected)


# Shapes that reach every edge of the CPU kernels: for K <= 32 the register tiles of the products
# (row tiles of 3 forward and 6 backward, column tiles of 4, vectors of 8 (float32) or 4 (float64)
# along D with a scalar tail, blocks of rows); the vectorised epilogues' 8 classes at a time with a
# partial last vector; and above K = 32 (and without unit column stride) the products by BLAS.
@pytest.mark.parametrize("n, d, k", [(1, 1, 1), (5, 3, 2), (7, 9, 3), (13, 17, 5), (50, 64, 10), (601, 129, 7),
                                     (97, 40, 32), (61, 35, 33), (300, 70, 41)])
@pytest.mark.parametrize("layout", ["contiguous", "row_slice", "column_stride"])
def test_influence_agrees_over_tile_edges(n, d, k, layout, dtype, device):
    h, y, W, b, S, t = problem(n=n, d=d, k=k, dtype=dtype, device=device, seed=n + d)
    if layout == "row_slice":  # rows further apart than d
        h = torch.cat([h, torch.randn_like(h)], 1)[:, :d]
    elif layout == "column_stride":  # no unit column stride: the GEMM path
        h = torch.stack([h, torch.randn_like(h)], 2)[..., 0]
    h.requires_grad_()
    go = torch.randn(n, dtype=dtype, device=device)
    got = infaug.influence(h, y, W, b, S, t)
    want = reference.influence(h, y, W, b, S, t)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-11, rtol=1e-11)
    torch.testing.assert_close(got, want, **tol)
    torch.testing.assert_close(torch.autograd.grad(got, h, go)[0], torch.autograd.grad(want, h, go)[0], **tol)


def test_influence_large_gradient():
    """A gradient of 32 MiB or more (non-temporal stores onto huge pages), float32 against float64:
    no less accurate than the closed form in torch ops."""
    h, y, W, b, S, t = problem(n=16384, d=512, k=10, dtype=torch.float32, seed=3)
    go = torch.randn(16384)

    def gradient(fn, dtype):
        leaf = h.to(dtype).requires_grad_()
        others = [a.to(dtype) for a in (W, b, S, t)]
        return torch.autograd.grad(fn(leaf, y, *others), leaf, go.to(dtype))[0].double()

    truth = gradient(reference.influence, torch.float64)
    ours = (gradient(infaug.influence, torch.float32) - truth).abs().max()
    torch_ops = (gradient(reference.influence, torch.float32) - truth).abs().max()
    assert ours <= 1e-5 * truth.abs().max()
    assert ours <= 2 * torch_ops


def test_influence_generic_code_path_agrees(generic_and_native):
    """The GEMM path taken off AVX2 (ATEN_CPU_CAPABILITY=default) gives the same results."""
    code = (
        "import sys, torch, infaug;"
        "g = torch.Generator().manual_seed(0);"
        "h = torch.randn(301, 37, generator=g, dtype=torch.float64).requires_grad_();"
        "y = torch.randint(0, 6, (301,), generator=g);"
        "W, S = torch.randn(6, 37, generator=g, dtype=torch.float64), torch.randn(6, 37, generator=g, dtype=torch.float64);"
        "b, t = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64);"
        "s = infaug.influence(h, y, W, b, S, t);"
        "torch.save([s.detach(), torch.autograd.grad(s.square().sum(), h)[0]], sys.argv[1])"
    )
    results = generic_and_native(code)
    for generic, native in zip(*results):
        torch.testing.assert_close(generic, native, atol=1e-12, rtol=1e-10)


def test_projections_output_is_differentiable_too():
    h, y, W, b, S, t = problem(n=7, d=5, k=3)
    h.requires_grad_()
    assert torch.autograd.gradcheck(lambda f: torch.ops.infaug.influence(f, y, W, b, S, t)[1], (h,))
    assert torch.autograd.gradcheck(lambda f: sum(o.sum() for o in torch.ops.infaug.influence(f, y, W, b, S, t)), (h,))


def test_influence_refuses_gradients_to_parameters():
    h, y, W, b, S, t = problem()
    with pytest.raises(RuntimeError, match="differentiable in features only"):
        infaug.influence(h, y, W.requires_grad_(), b, S, t).sum().backward()


def test_influence_opcheck_and_compile(device):
    for bias in [True, False]:
        h, y, W, b, S, t = problem(n=6, bias=bias, device=device)
        torch.library.opcheck(torch.ops.infaug.influence, (h.requires_grad_(), y, W, b, S, t))
        projections = torch.ops.infaug.influence(h.detach(), y, W, b, S, t)[1]
        torch.library.opcheck(torch.ops.infaug._influence_backward, (torch.randn(6, dtype=h.dtype, device=device), projections, y, W, b, S, t))
    torch._dynamo.reset()
    h, y, W, b, S, t = problem(n=6, device=device)
    h.requires_grad_()
    compiled = torch.compile(lambda f: infaug.influence(f, y, W, b, S, t).square().sum(), fullgraph=True, backend="aot_eager")
    eager = infaug.influence(h, y, W, b, S, t).square().sum()
    torch.testing.assert_close(torch.autograd.grad(compiled(h), h)[0], torch.autograd.grad(eager, h)[0])


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda a: {"labels": torch.full_like(a["labels"], 4)}, ValueError, r"labels must lie in \[0, K\) = \[0, 4\), got values from 4 to 4"),
        (lambda a: {"labels": a["labels"] - 1}, ValueError, r"labels must lie in \[0, K\)"),
        (lambda a: {"weight": a["weight"][:, :6]}, ValueError, r"weight must have shape \(K, D\) = \(4, 7\), got \(4, 6\)"),
        (lambda a: {"s_weight": a["s_weight"][:3]}, ValueError, r"s_weight must have shape \(K, D\) = \(4, 7\), got \(3, 7\)"),
        (lambda a: {"bias": a["bias"][:2]}, ValueError, r"bias must have shape \(K,\) = \(4,\), got \(2,\)"),
        (lambda a: {"labels": a["labels"][:5]}, ValueError, r"labels must have shape \(N,\) = \(64,\), got \(5,\)"),
        (lambda a: {"labels": a["labels"].int()}, TypeError, r"labels must be torch.int64, got torch.int32"),
        (lambda a: {"s_bias": a["s_bias"].float()}, TypeError, r"s_bias must have the same dtype as features \(torch.float64\)"),
        (lambda a: {"features": a["features"][0]}, ValueError, r"features must have shape \(N, D\), got \(7,\)"),
        (lambda a: {"weight": a["weight"].to("meta")}, ValueError, r"weight must be on the same device as features"),
    ],
)
def test_influence_bad_input(change, error, message):
    args = dict(zip(["features", "labels", "weight", "bias", "s_weight", "s_bias"], problem()))
    args.update(change(args))
    with pytest.raises(error, match=message):
        infaug.influence(**args)


# ---- the engine ------------------------------------------------------------------------------


def engine_problem(n=300, d=6, k=4, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=torch.float64).to(device)
    W = torch.randn(k, d, generator=g, dtype=torch.float64).to(device)
    y = torch.distributions.Categorical(logits=h @ W.T.cpu() if device == "cpu" else (h @ W.T).cpu()).sample().to(device)
    b = torch.randn(k, generator=g, dtype=torch.float64).to(device) * 0.1
    hv = torch.randn(80, d, generator=g, dtype=torch.float64).to(device)
    yv = torch.randint(0, k, (80,), generator=g).to(device)
    return h, y, W, b, hv, yv


def test_fit_in_batches_equals_fit_at_once(device):
    h, y, W, b, hv, yv = engine_problem(device=device)
    for method in ["exact", "cg"]:
        once = LastLayerInfluence(W, b, method=method).fit(h, y).set_validation(hv, yv)
        loader = [(h[i : i + 64], y[i : i + 64]) for i in range(0, len(h), 64)]
        batched = LastLayerInfluence(W, b, method=method)
        batched.fit(loader[:2]).fit(loader[2:])  # several calls, each an iterable of batches
        batched.set_validation(loader[:0] + [(hv[:40], yv[:40]), (hv[40:], yv[40:])])
        torch.testing.assert_close(batched.s_weight, once.s_weight, atol=1e-10, rtol=1e-9)
        torch.testing.assert_close(batched.s_bias, once.s_bias, atol=1e-10, rtol=1e-9)


def test_exact_hessian_matches_autograd():
    h, y, W, b, hv, yv = engine_problem(n=50, d=3, k=3)
    engine = LastLayerInfluence(W, b, damping=0.05, method="exact").fit(h, y)
    theta = torch.cat([W, b[:, None]], 1)

    def loss(t):
        return F.cross_entropy(F.linear(h, t[:, :3], t[:, 3]), y) + 0.05 / 2 * t.square().sum()

    hessian = torch.autograd.functional.hessian(loss, theta).reshape(12, 12)
    v = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(engine.hessian_vector_product(v), (hessian @ v.reshape(-1)).view(3, 4))
    cg = LastLayerInfluence(W, b, damping=0.05, method="cg").fit(h, y)
    torch.testing.assert_close(cg.hessian_vector_product(v), (hessian @ v.reshape(-1)).view(3, 4))


@pytest.mark.parametrize("bias", [True, False])
def test_cg_agrees_with_exact(bias, device):
    h, y, W, b, hv, yv = engine_problem(device=device)
    b = b if bias else None
    exact = LastLayerInfluence(W, b, method="exact").fit(h, y).set_validation(hv, yv)
    cg = LastLayerInfluence(W, b, method="cg").fit(h, y).set_validation(hv, yv)
    assert exact.solve_info["residual"] < 1e-10 and cg.solve_info["residual"] < 1e-8
    error = (cg.s_weight - exact.s_weight).norm() / exact.s_weight.norm()
    assert error < 1e-4
    torch.testing.assert_close(cg.up(h, y), exact.up(h, y), atol=1e-6, rtol=1e-4)


def test_lissa_agrees_within_a_few_percent():
    h, y, W, b, hv, yv = engine_problem()
    exact = LastLayerInfluence(W, b, damping=0.1, method="exact").fit(h, y).set_validation(hv, yv)
    scale = 2 * exact.largest_eigenvalue()
    lissa = LastLayerInfluence(W, b, damping=0.1, method="lissa", scale=scale, depth=400, batch_size=100, repeats=4)
    # Minibatches: a few percent, above the default tol, and the warning says what would do better.
    with pytest.warns(InaccurateSolveWarning, match=r"minibatch LiSSA \(batch_size=100 of 300\) is stochastic.*more repeats \(now 4\) or full batches"):
        lissa.fit(h, y).set_validation(hv, yv)
    error = (lissa.s_weight - exact.s_weight).norm() / exact.s_weight.norm()
    assert error < 0.05, error
    assert lissa.solve_info["residual"] < 0.05


@pytest.fixture(scope="module")
def mnist_features(mnist_or_embedded):
    """An ill-conditioned last layer on real data: 1000 MNIST digits through a fixed random ReLU
    map (64 features), logistic regression trained with L2 = damping = 0.01, 500 validation
    digits; the damped Hessian has lambda_min = 0.01 and lambda_max about 1.5-1.9, and g_val has
    weight on eigenvalues near 0.01."""
    from infaug.ground_truth import train_logistic

    digits = mnist_or_embedded
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(digits), generator=g)[:1500]
    projection = torch.randn(784, 64, generator=g, dtype=torch.float64) * (3.0 / math.sqrt(784))
    features = torch.relu(digits.images[order].flatten(1).double() @ projection)
    labels = digits.labels[order]
    h, y, hv, yv = features[:1000], labels[:1000], features[1000:], labels[1000:]
    W, b = train_logistic(h, y, 0.01)
    exact = LastLayerInfluence(W, b, damping=0.01, method="exact").fit(h, y).set_validation(hv, yv)
    return h, y, W, b, hv, yv, exact


def lissa_solve(problem, **options):
    """LiSSA on ``problem`` and (relative error of s_val against exact, the engine, warnings)."""
    h, y, W, b, hv, yv, exact = problem
    engine = LastLayerInfluence(W, b, damping=0.01, method="lissa", **options).fit(h, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine.set_validation(hv, yv)
    s, truth = torch.cat([engine.s_weight, engine.s_bias[:, None]], 1), torch.cat([exact.s_weight, exact.s_bias[:, None]], 1)
    error = float((s - truth).norm() / truth.norm())
    return error, engine, [w for w in caught if issubclass(w.category, InaccurateSolveWarning)]


def test_lissa_default_reaches_its_tolerance_on_mnist_features(mnist_features):
    """With full batches the relative error of s_val and the relative residual are both at most
    rho^(depth + 1) <= tol (see LastLayerInfluence): the default options must get there, silently."""
    error, engine, caught = lissa_solve(mnist_features)
    info = engine.solve_info
    assert not caught, [str(w.message) for w in caught]
    assert info["tol"] == 1e-3 and info["residual"] <= 1e-3, info
    assert error <= 1e-3, (error, info)
    largest = engine.largest_eigenvalue()
    assert info["scale"] == pytest.approx(0.6 * largest)
    assert info["depth"] == math.ceil(math.log(1e-3) / math.log(1 - 0.01 / info["scale"]))
    # The old defaults (scale=10, depth=1000) were about 20% away here, and now say so: at
    # scale=10 > lambda_max the bound's rate is 1 - damping / scale.
    error, _, old = lissa_solve(mnist_features, scale=10, depth=1000)
    assert error > 0.1 and len(old) == 1
    needed = math.ceil(math.log(1e-3) / math.log(1 - 0.01 / 10))
    expected = f"depth={needed} would reach it at this scale (or scale={info['scale']:.4g}, 0.6 lambda_max(H), with depth={info['depth']})"
    assert expected in str(old[0].message), str(old[0].message)


def test_lissa_too_shallow_warns_with_a_depth_that_reaches_tol(mnist_features):
    error, engine, caught = lissa_solve(mnist_features, depth=100)
    assert len(caught) == 1, caught
    message = str(caught[0].message)
    assert re.search(r"relative residual \|H s - g\| / \|g\| = [0-9.e+-]+ is above tol=0.001 after depth=100 at scale=", message)
    assert error > 1e-2 and engine.solve_info["residual"] > 1e-3
    depth = int(re.search(r"depth=(\d+) would reach it", message).group(1))
    assert depth > 100
    error, engine, caught = lissa_solve(mnist_features, depth=depth)
    assert not caught and engine.solve_info["residual"] <= 1e-3 and error <= 1e-3
    # A scale far too large: the named (scale, depth) pair reaches tol too.
    _, _, caught = lissa_solve(mnist_features, scale=100.0, depth=200)
    scale, depth = re.search(r"\(or scale=([0-9.e+-]+), 0.6 lambda_max\(H\), with depth=(\d+)\)", str(caught[0].message)).groups()
    error, engine, caught = lissa_solve(mnist_features, scale=float(scale), depth=int(depth))
    assert not caught and engine.solve_info["residual"] <= 1e-3 and error <= 1e-3


def test_lissa_strict_raises_instead_of_warning(mnist_features):
    h, y, W, b, hv, yv, _ = mnist_features
    engine = LastLayerInfluence(W, b, damping=0.01, method="lissa", depth=100, strict=True).fit(h, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InaccurateSolveWarning)
        with pytest.raises(RuntimeError, match=r"above tol=0.001 after depth=100 .* depth=\d+ would reach it"):
            engine.set_validation(hv, yv)
    assert engine.s_weight is None and engine.solve_info["residual"] > 1e-3  # no inaccurate s_val left behind
    with pytest.raises(RuntimeError, match=r"up needs s_val"):
        engine.up(h, y)
    # strict with an accurate solve: nothing raised
    strict = LastLayerInfluence(W, b, damping=0.01, method="lissa", tol=0.1, depth=400, strict=True).fit(h, y).set_validation(hv, yv)
    assert strict.solve_info["residual"] <= 0.1


def test_lissa_default_depth_cap_is_named(monkeypatch):
    """When the depth the bound asks for is above the cap on the default depth, the warning says so."""
    import infaug.engine

    monkeypatch.setattr(infaug.engine, "LISSA_MAX_DEPTH", 20)
    h, y, W, b, hv, yv = engine_problem()
    engine = LastLayerInfluence(W, b, damping=0.01, method="lissa").fit(h, y)
    with pytest.warns(InaccurateSolveWarning, match=r"after depth=20 .* that is above the cap on the default depth, 20: pass depth=\d+ or use method='cg'"):
        engine.set_validation(hv, yv)
    assert engine.solve_info["depth"] == 20


def test_lissa_explicit_options_are_honoured():
    h, y, W, b, hv, yv = engine_problem()
    engine = LastLayerInfluence(W, b, damping=0.1, method="lissa", scale=5.0, depth=7, tol=0.5).fit(h, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InaccurateSolveWarning)
        engine.set_validation(hv, yv)
    info = engine.solve_info
    assert (info["scale"], info["depth"], info["tol"], info["iterations"]) == (5.0, 7, 0.5, 7)
    # scale given, depth chosen: from the damping alone
    engine = LastLayerInfluence(W, b, damping=0.1, method="lissa", scale=5.0).fit(h, y).set_validation(hv, yv)
    assert engine.solve_info["depth"] == math.ceil(math.log(1e-3) / math.log(1 - 0.1 / 5.0))


def test_lissa_divergence_names_a_scale_that_works():
    h, y, W, b, hv, yv = engine_problem()
    engine = LastLayerInfluence(W, b, damping=0.1, method="lissa", scale=0.01, depth=200).fit(h, y)
    with pytest.raises(RuntimeError, match=r"lissa diverged .* scale=([0-9.e+-]+) would work") as info:
        engine.set_validation(hv, yv)
    suggested = float(info.value.args[0].rsplit("scale=", 1)[1].split()[0])
    fixed = LastLayerInfluence(W, b, damping=0.1, method="lissa", scale=suggested, depth=1000).fit(h, y).set_validation(hv, yv)
    assert torch.isfinite(fixed.s_weight).all() and fixed.solve_info["residual"] < 0.05


def test_auto_picks_exact_for_small_and_cg_for_large():
    W = torch.zeros(10, 100)
    assert LastLayerInfluence(W, torch.zeros(10)).method == "exact"
    assert LastLayerInfluence(torch.zeros(100, 512), torch.zeros(100)).method == "cg"


def test_up_and_aug_signs_and_shapes():
    h, y, W, b, hv, yv = engine_problem()
    engine = LastLayerInfluence(W, b).fit(h, y).set_validation(hv, yv)
    assert engine.up(h, y).shape == (300,)
    torch.testing.assert_close(engine.aug(h, h, y), torch.zeros(300, dtype=torch.float64))
    shifted = h + 0.1
    torch.testing.assert_close(engine.aug(h, shifted, y), engine.up(shifted, y) - engine.up(h, y))


def test_last_layer_features():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(5, 3, 4)
    features, weight, bias = last_layer_features(model, x)
    assert features.shape == (5, 8) and weight is model[3].weight and bias is model[3].bias
    torch.testing.assert_close(F.linear(features, weight, bias), model(x))
    with pytest.raises(ValueError, match="does not produce the model's output"):
        last_layer_features(nn.Sequential(nn.Linear(12, 3), nn.Softmax(1)), torch.randn(2, 12))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda e, h, y: LastLayerInfluence(e.weight, e.bias, method="newton"), ValueError, r"method must be one of 'auto', 'exact', 'cg', 'lissa', got 'newton'"),
        (lambda e, h, y: LastLayerInfluence(e.weight, e.bias, method="cg", depth=3), TypeError, r"unknown options for method 'cg': \['depth'\]"),
        (lambda e, h, y: LastLayerInfluence(e.weight, e.bias, method="cg", strict=True), TypeError, r"unknown options for method 'cg': \['strict'\]"),
        (lambda e, h, y: LastLayerInfluence(e.weight, e.bias, method="lissa", stric=True), TypeError, r"unknown options for method 'lissa': \['stric'\]; it takes .*'strict'"),
        (lambda e, h, y: LastLayerInfluence(e.weight, e.bias, method="lissa", tol=0), ValueError, r"lissa: tol must lie in \(0, 1\), got 0"),
        (lambda e, h, y: LastLayerInfluence(e.weight, e.bias, method="lissa", scale=-1.0), ValueError, r"lissa: scale must be a finite number > 0 or None, got -1.0"),
        (lambda e, h, y: e.set_validation(h, y), RuntimeError, r"set_validation needs the training samples first: call fit"),
        (lambda e, h, y: e.up(h, y), RuntimeError, r"up needs s_val"),
        (lambda e, h, y: e.fit(h[:, :5], y), ValueError, r"fit: features must have shape \(N, D\) = \(N, 6\), got \(300, 5\)"),
        (lambda e, h, y: e.fit(h, y + 10), ValueError, r"fit: labels must lie in \[0, K\) = \[0, 4\)"),
        (lambda e, h, y: e.fit(h.to("meta"), y), ValueError, r"fit: features and labels must be on the weight's device \(cpu\), got meta and cpu"),
        (lambda e, h, y: LastLayerInfluence(e.weight, e.bias, damping=-1.0), ValueError, r"damping must be a finite number >= 0"),
    ],
)
def test_engine_bad_input(call, error, message):
    h, y, W, b, hv, yv = engine_problem()
    engine = LastLayerInfluence(W, b)
    with pytest.raises(error, match=message):
        call(engine, h, y)


# ---- ground truth ----------------------------------------------------------------------------


def test_predictions_match_retraining(mnist_or_embedded):
    """The check against retraining in small: removals and replacements on real digits, retrained for real."""
    from infaug.ground_truth import check_influence

    result = check_influence(mnist_or_embedded, train_size=2000, validation_size=500, removals=20, replacements=20)
    assert result.removal.pearson >= 0.98, result.summary()
    assert result.replacement.pearson >= 0.99, result.summary()
    assert abs(result.removal.slope - 1) <= 0.15, result.summary()
    assert abs(result.replacement.slope - 1) <= 0.15, result.summary()


def test_auto_chooses_from_the_solver_costs():
    from infaug.engine import solver_costs

    c = solver_costs(10, 128)
    assert c["params"] == 1290 and c["exact_bytes"] == 1290**2 * 8 and c["cg_iterations"] == 1000
    assert c["exact_macs_per_sample"] == 1290**2 + 10 * 129**2 and c["cg_macs_per_sample"] == 1000 * 2 * 10 * 128
    for (k, d), method in {(10, 128): "exact", (3, 2): "exact", (10, 512): "cg", (1000, 2048): "cg"}.items():
        assert LastLayerInfluence(torch.zeros(k, d), torch.zeros(k)).method == method, (k, d)
        costs = solver_costs(k, d)
        assert (method == "exact") == (costs["exact_macs_per_sample"] <= costs["cg_macs_per_sample"] and costs["exact_bytes"] <= 1 << 30)
    # a memory budget below the Hessian, or fewer cg iterations allowed, turn exact into cg
    assert LastLayerInfluence(torch.zeros(10, 128), torch.zeros(10), exact_memory=1 << 20).method == "cg"
    assert LastLayerInfluence(torch.zeros(10, 128), torch.zeros(10), max_iter=50).method == "cg"
    assert LastLayerInfluence(torch.zeros(10, 512), torch.zeros(10), exact_limit=10_000).method == "exact"
    # the ImageNet head: cg, whose memory and all-reduce shrink and stay with P ranks
    big = solver_costs(1000, 2048, n=1_281_167, ranks=8)
    assert big["exact_bytes"] > 30e12 and big["cg_all_reduce_bytes"] == 1000 * 2049 * 8
    assert big["cg_bytes_per_rank"] == -(-1_281_167 // 8) * (2048 * 4 + 8 * 1000)


def test_scale_study_runs_and_extrapolates_from_its_measurements(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"
    out = tmp_path / "scale.json"
    subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], check=True, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    rates = result["rates_macs_per_second"]
    assert all(v > 0 for k, v in rates.items() if not k.endswith("_from")) and {r["kind"] for r in result["measured"]} == {"cg_hvp", "exact", "influence"}
    rows = result["extrapolated"]
    assert [r["ranks"] for r in rows] == [1, 2, 8, 64] and all(r["auto"] == "cg" for r in rows)
    # sharded work shrinks with P, what every rank holds does not
    assert rows[0]["cg_hvp_seconds"] > rows[-1]["cg_hvp_seconds"] and rows[0]["exact_hessian_bytes_per_rank"] == rows[-1]["exact_hessian_bytes_per_rank"]
    n, d, k = rows[0]["N"], rows[0]["D"], rows[0]["K"]
    assert rows[0]["cg_hvp_seconds"] == pytest.approx(2 * k * d * n / rows[0]["rates"]["cg_hvp"])
