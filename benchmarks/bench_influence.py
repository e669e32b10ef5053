"""Speed of infaug.influence and of the influence engine's solve.

    python benchmarks/bench_influence.py                 # CPU, writes benchmarks/results/influence-cpu.json
    python benchmarks/bench_influence.py --device cuda   # GPU, writes benchmarks/results/influence-<gpu>.json

Correctness first: the fused op must agree with the closed form in torch ops and with materialised
per-sample gradients, values and gradients. Then, interleaved in one process, for N in {4096, 50000},
D in {512, 2048}, K in {10, 100}: forward, and forward+backward with features requiring grad, of
  - infaug.influence (one GEMM against [W; S] and a fused per-row epilogue),
  - the closed form written in torch ops (infaug.reference.influence),
  - materialised (N, K, D) per-sample gradients (infaug.reference.influence_per_sample), where the
    (N, K, D) tensor fits in --per-sample-limit GB.
Finally the cg solve of LastLayerInfluence at D = 2048, K = 100: time, iterations, residual.
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compare, environment, write  # noqa: E402

import infaug  # noqa: E402
from infaug import LastLayerInfluence, reference  # noqa: E402

CANDIDATES = {
    "infaug": infaug.influence,
    "closed_form": reference.influence,
    "per_sample": reference.influence_per_sample,
}


def problem(n, d, k, device, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype).to(device)
    y = torch.randint(0, k, (n,), generator=g).to(device)
    W = (torch.randn(k, d, generator=g, dtype=dtype) / d**0.5).to(device)
    S = (torch.randn(k, d, generator=g, dtype=dtype) / d**0.5).to(device)
    b, t = torch.randn(k, generator=g, dtype=dtype).to(device), torch.randn(k, generator=g, dtype=dtype).to(device)
    return h, y, W, b, S, t


def check_agreement(device):
    for n, d, k in [(257, 33, 7), (64, 512, 100)]:
        h, y, W, b, S, t = problem(n, d, k, device, torch.float64)
        h.requires_grad_()
        expected = reference.influence(h, y, W, b, S, t)
        grad_out = torch.randn_like(expected)
        expected_grad = torch.autograd.grad(expected, h, grad_out)[0]
        for name, fn in CANDIDATES.items():
            got = fn(h, y, W, b, S, t)
            torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10, msg=f"{name} value")
            torch.testing.assert_close(torch.autograd.grad(got, h, grad_out)[0], expected_grad, atol=1e-10, rtol=1e-10, msg=f"{name} grad")
    print("# agreement: infaug.influence == closed form == per-sample gradients (float64, values and gradients)")


def step(fn, mode, h, y, W, b, S, t, grad_out):
    if mode == "forward":

        def run():
            with torch.no_grad():
                fn(h, y, W, b, S, t)

        return run
    leaf = h.detach().requires_grad_()

    def run():
        torch.autograd.grad(fn(leaf, y, W, b, S, t), leaf, grad_out)

    return run


def bench_size(n, d, k, device, dtype, runs, per_sample_limit_gb):
    h, y, W, b, S, t = problem(n, d, k, device, dtype)
    grad_out = torch.randn(n, dtype=dtype, device=device)
    per_sample_gb = n * k * d * h.element_size() / 2**30
    results = {}
    for mode in ["forward", "forward_backward"]:
        # fwd+bwd through (N, K, D) keeps about three such tensors alive
        limit = per_sample_limit_gb / (1 if mode == "forward" else 3)
        candidates = {
            name: step(fn, mode, h, y, W, b, S, t, grad_out)
            for name, fn in CANDIDATES.items()
            if name != "per_sample" or per_sample_gb <= limit
        }
        timing = compare(candidates, device, runs=runs, warmup=2, block=max(1, min(10, runs // 4)))
        ours = timing["infaug"]["median_ms"]
        for name in candidates:
            if name != "infaug":
                timing[f"speedup_vs_{name}"] = timing[name]["median_ms"] / ours
        if "per_sample" not in candidates:
            timing["per_sample"] = f"skipped: (N, K, D) is {per_sample_gb:.1f} GB"
        results[mode] = timing
    return results


def bench_cg(device, dtype, n, d, k):
    h, y, W, b, _, _ = problem(n, d, k, device, dtype, seed=1)
    hv, yv, *_ = problem(2000, d, k, device, dtype, seed=2)
    engine = LastLayerInfluence(W, b, damping=0.01, method="cg", tol=1e-6)
    start = time.perf_counter()
    engine.fit(h, y)
    fit_seconds = time.perf_counter() - start
    engine.set_validation(hv, yv)
    info = dict(engine.solve_info, fit_seconds=fit_seconds, n=n, d=d, k=k, damping=0.01, tol=1e-6)
    return info


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per candidate (at least)")
    parser.add_argument("--per-sample-limit", type=float, default=4.0, help="largest (N, K, D) tensor in GB to time")
    parser.add_argument("--no-cg", action="store_true", help="skip the cg solve")
    parser.add_argument("--sizes", nargs="*", default=None, metavar="NxDxK", help="only these sizes, e.g. 50000x512x10")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    env = environment(device)
    check_agreement(device)
    name = env.get("gpu", env["cpu"]) if device.type == "cuda" else "CPU"
    print(f"# infaug.influence on {name}, torch {env['torch']}, capability {env['cpu_capability']}, {env['threads']} threads, {args.dtype}")
    print("| N | D | K | forward | fwd+bwd (features require grad) |")
    print("|---|---|---|---|---|")
    sizes = {}
    sizes_wanted = [tuple(map(int, size.split("x"))) for size in args.sizes] if args.sizes is not None else [
        (n, d, k) for n in [4096, 50000] for d in [512, 2048] for k in [10, 100]
    ]
    for n, d, k in sizes_wanted:
        r = bench_size(n, d, k, device, dtype, args.runs, args.per_sample_limit)
        sizes[f"{n}x{d}x{k}"] = r

        def cell(m):
            t = r[m]
            text = f"{t['infaug']['median_ms']:.2f} ms, x{t['speedup_vs_closed_form']:.2f} vs closed form"
            if "speedup_vs_per_sample" in t:
                text += f", x{t['speedup_vs_per_sample']:.0f} vs per-sample"
            return text

        print(f"| {n} | {d} | {k} | {cell('forward')} | {cell('forward_backward')} |", flush=True)
    payload = {"environment": env, "dtype": args.dtype, "sizes": sizes}
    if not args.no_cg:
        cg = bench_cg(device, dtype, 50000, 2048, 100)
        payload["cg_solve"] = cg
        print(
            f"# cg solve N={cg['n']} D={cg['d']} K={cg['k']}: {cg['seconds']:.1f} s, {cg['iterations']} iterations, "
            f"relative residual {cg['residual']:.1e} (fit {cg['fit_seconds']:.2f} s)"
        )
    out = args.out or ("influence-cpu" if device.type == "cpu" else f"influence-{name.replace(' ', '-')}")
    print(f"# wrote {write(out, payload)}")


if __name__ == "__main__":
    main()
