"""infaug.influence against the closed form in torch ops and against materialised per-sample
gradients, as pytest-benchmark groups: one group per (device, N, D, K, mode) holding

    fused        infaug.influence
    closed_form  infaug.reference.influence
    closed_form_compiled  the same under torch.compile (inductor), unless --bench-quick or --bench-compile off
    floor        the matrix products the operator cannot avoid, by torch.mm: the features against the
                 stacked [W; S] (2K x D), and with a backward also an (N, 2K) matrix against [W; S]
    per_sample   infaug.reference.influence_per_sample, where its (N, K, D) tensor fits in
                 --bench-per-sample-limit GB (a third of that for forward+backward), as bench_influence.py

at N in {4096, 50000}, D in {512, 2048}, K in {10, 100, 1000} (N = 1024, D in {64, 256} with
--bench-quick), in bench_influence.py's modes ``forward`` (no grad) and ``forward_backward``
(features requiring grad), float32.

Correctness first: bench_influence.check_agreement (every candidate against the closed form in
float64, values and gradients, on small sizes), then, at the timed size, the candidate's value
and gradient in float32 against the closed form's.
"""

from __future__ import annotations

from typing import Dict

import pytest
import torch

import bench_influence  # the script beside this file (conftest puts benchmarks/ on the path)

SIZES = [(n, d, k) for n in (4096, 50000) for d in (512, 2048) for k in (10, 100, 1000)]
QUICK_SIZES = [(1024, d, k) for d in (64, 256) for k in (10, 100)]
MODES = ["forward", "forward_backward"]
CANDIDATES = {"fused": "infaug", "closed_form": "closed_form", "per_sample": "per_sample"}  # -> bench_influence.CANDIDATES
EXTRA = ["closed_form_compiled", "floor"]

# float32 against the closed form, relative in norm: the products differ only in summation order.
TOLERANCE = 1e-5


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "size" in metafunc.fixturenames:
        sizes = QUICK_SIZES if metafunc.config.getoption("--bench-quick") else SIZES
        metafunc.parametrize("size", sizes, ids=lambda s: "N{}-D{}-K{}".format(*s))
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", MODES)
    if "candidate" in metafunc.fixturenames:  # the candidates of one group last: they run one after the other
        config = metafunc.config
        option = config.getoption("--bench-compile")
        compiled = option == "on" or (option == "auto" and not config.getoption("--bench-quick"))
        metafunc.parametrize("candidate", list(CANDIDATES) + EXTRA[0 if compiled else 1:])


_AGREED: set = set()
_PROBLEM: Dict[tuple, tuple] = {}


def problem(size, device: str) -> tuple:
    """bench_influence.problem in float32 and a grad_out, one size kept at a time."""
    key = (size, device)
    if key not in _PROBLEM:
        _PROBLEM.clear()
        tensors = bench_influence.problem(*size, torch.device(device), torch.float32)
        grad_out = torch.randn(size[0], generator=torch.Generator().manual_seed(1)).to(device)
        _PROBLEM[key] = (*tensors, grad_out)
    return _PROBLEM[key]


def outputs(fn, mode: str, h, y, W, b, S, t, grad_out) -> tuple:
    """What the timed call computes: the scores, and with a backward the features' gradient."""
    if mode == "forward":
        with torch.no_grad():
            return (fn(h, y, W, b, S, t),)
    leaf = h.detach().requires_grad_()
    scores = fn(leaf, y, W, b, S, t)
    return (scores.detach(), torch.autograd.grad(scores, leaf, grad_out)[0])


def floor_bytes(mode: str, n: int, d: int, k: int) -> int:
    """Bytes that must be read and written once (float32 features and weights, int64 labels): the
    features, labels, W, S, b, t read, the scores written; with a backward also grad_out read and the
    features' gradient written."""
    elements = n * d + 2 * k * d + 2 * k + n
    if mode != "forward":
        elements += n + n * d
    return 4 * elements + 8 * n


_COMPILED: list = []


def compiled_closed_form():
    if not _COMPILED:
        torch._dynamo.config.recompile_limit = 256  # every size compiles once; never fall back to eager
        torch._dynamo.config.fail_on_recompile_limit_hit = True
        _COMPILED.append(torch.compile(bench_influence.CANDIDATES["closed_form"], dynamic=False))
    return _COMPILED[0]


def floor_step(mode: str, h, y, W, b, S, t, grad_out):
    """The products alone: features @ [W; S]^T, and for a backward (N, 2K) @ [W; S]."""
    stacked = torch.cat([W, S]).contiguous()
    coefficients = torch.randn(h.shape[0], 2 * W.shape[0], generator=torch.Generator().manual_seed(2)).to(h)

    def run():
        torch.mm(h, stacked.t())
        if mode != "forward":
            torch.mm(coefficients, stacked)

    return run


def test_influence(bench, assert_close_outputs, per_sample_limit, device, size, mode, candidate):
    n, d, k = size
    if candidate == "floor":
        tensors = problem(size, device)
        bench(floor_step(mode, *tensors), torch.device(device), group=f"influence {device} N={n} D={d} K={k} {mode}",
              candidate=candidate, warmup=2, n=n, d=d, k=k, mode=mode, dtype="float32")
        return
    if candidate == "per_sample":
        gigabytes = n * k * d * 4 / 2**30
        # fwd+bwd through (N, K, D) keeps about three such tensors alive (bench_influence.bench_size)
        limit = per_sample_limit / (1 if mode == "forward" else 3)
        if gigabytes > limit:
            pytest.skip(f"per-sample gradients: (N, K, D) is {gigabytes:.1f} GB, over the {limit:.2g} GB limit "
                        f"(--bench-per-sample-limit {per_sample_limit:g} GB{'' if mode == 'forward' else ' / 3'})")
    if device not in _AGREED:
        bench_influence.check_agreement(torch.device(device))  # raises on any disagreement
        _AGREED.add(device)
    tensors = problem(size, device)
    fn = compiled_closed_form() if candidate == "closed_form_compiled" else bench_influence.CANDIDATES[CANDIDATES[candidate]]
    if candidate != "closed_form":
        expected = outputs(bench_influence.CANDIDATES["closed_form"], mode, *tensors)
        assert_close_outputs(f"influence {candidate} {mode}", outputs(fn, mode, *tensors), expected, TOLERANCE)
        del expected
    step = bench_influence.step(fn, mode, *tensors)
    bench(step, torch.device(device), group=f"influence {device} N={n} D={d} K={k} {mode}", candidate=candidate,
          bytes_moved=floor_bytes(mode, n, d, k), warmup=2, n=n, d=d, k=k, mode=mode, dtype="float32")
