"""Speed of infaug.warp against its pure-torch reference, eager and under torch.compile.

    python benchmarks/bench_warp.py                 # CPU, writes benchmarks/results/warp-cpu.json
    python benchmarks/bench_warp.py --device cuda   # GPU, writes benchmarks/results/warp-<gpu>.json

Correctness first: the fused op must agree with the reference (values and every gradient) on each
configuration before anything is timed. Then, interleaved in one process: forward without grad,
forward+backward with x requiring grad, and forward+backward with only theta requiring grad, at
the two target sizes with smooth 3 and 5, then a sweep over N and over H = W.
"""

import argparse
import os
import sys
from typing import Callable, Dict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import infaug  # noqa: E402
from infaug import reference  # noqa: E402

MODES = ("forward", "backward_x", "backward_theta")


def make_inputs(n: int, c: int, h: int, w: int, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """Images and a random smooth-ish flow around the identity (scale, shear, shift of a few pixels)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.rand(n, c, h, w, generator=g, dtype=dtype)
    identity = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype).view(1, 4, 1, 1)
    theta_w = identity + 0.1 * torch.randn(n, 4, h, w, generator=g, dtype=dtype)
    theta_b = 0.1 * torch.randn(n, 2, h, w, generator=g, dtype=dtype)
    grad_y = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    return [t.to(device) for t in (x, theta_w, theta_b, grad_y)]


def step(fn: Callable, mode: str, x, theta_w, theta_b, grad_y, smooth: int) -> Callable[[], object]:
    """One timed call of `fn` in the given mode."""
    if mode == "forward":

        def run():
            with torch.no_grad():
                return fn(x, theta_w, theta_b, smooth=smooth)

        return run
    x_req = x.detach().requires_grad_(mode == "backward_x")
    tw = theta_w.detach().requires_grad_()
    tb = theta_b.detach().requires_grad_()
    inputs = (x_req, tw, tb) if mode == "backward_x" else (tw, tb)

    def run():
        return torch.autograd.grad(fn(x_req, tw, tb, smooth=smooth), inputs, grad_y)

    return run


def check_agreement(x, theta_w, theta_b, grad_y, smooth: int) -> None:
    """Raises if the fused op and the reference disagree, in value or any gradient.

    Compared in float64: in float32 a few sampling points land within rounding of a pixel
    boundary, where the bilinear gradient jumps, and either side is right.
    """
    results = []
    for fn in (infaug.warp, reference.warp):
        leaves = [t.detach().double().requires_grad_() for t in (x, theta_w, theta_b)]
        y = fn(*leaves, smooth=smooth)
        results.append([y, *torch.autograd.grad(y, leaves, grad_y.double())])
    for name, ours, ref in zip(("y", "grad_x", "grad_theta_w", "grad_theta_b"), *results):
        err = ((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item()
        if not err <= 1e-9:
            raise SystemExit(f"disagreement with the reference: {name} relative error {err:.2e}")
    with torch.no_grad():
        err = (infaug.warp(x, theta_w, theta_b, smooth=smooth) - reference.warp(x, theta_w, theta_b, smooth=smooth))
        if x.dtype != torch.float64 and not err.abs().max().item() <= 1e-4:
            raise SystemExit(f"disagreement with the reference in {x.dtype}: {err.abs().max().item():.2e}")


def bench_config(shape, smooth, device, dtype, compiled, runs, min_seconds) -> Dict[str, dict]:
    x, theta_w, theta_b, grad_y = make_inputs(*shape, device, dtype)
    check_agreement(x, theta_w, theta_b, grad_y, smooth)
    out = {}
    for mode in MODES:
        candidates = {
            "infaug": step(infaug.warp, mode, x, theta_w, theta_b, grad_y, smooth),
            "reference": step(reference.warp, mode, x, theta_w, theta_b, grad_y, smooth),
        }
        if compiled is not None:
            candidates["reference_compiled"] = step(compiled, mode, x, theta_w, theta_b, grad_y, smooth)
        timings = common.compare(candidates, device, runs=runs, min_seconds=min_seconds)
        ours = timings["infaug"]["median_ms"]
        timings["speedup_vs_reference"] = timings["reference"]["median_ms"] / ours
        if compiled is not None:
            timings["speedup_vs_compiled"] = timings["reference_compiled"]["median_ms"] / ours
        out[mode] = timings
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--runs", type=int, default=100, help="timed runs per candidate (at least)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="keep timing at least this long")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile reference")
    parser.add_argument("--no-sweep", action="store_true", help="only the target sizes")
    parser.add_argument("--out", default=None, help="results name (default warp-<device>)")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    # One specialisation per size, smooth and requires_grad pattern: raise dynamo's recompile limit
    # so that none falls back to eager (which would silently time the eager reference).
    torch._dynamo.config.recompile_limit = 256
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    compiled = None if args.no_compile else torch.compile(reference.warp, dynamic=False)
    env = common.environment(device)
    print(f"# infaug.warp vs reference on {env.get('gpu', env['cpu'])}, torch {env['torch']}, "
          f"capability {env['cpu_capability']}, {env['threads']} threads, {args.dtype}")

    results = []

    def run(shape, smooth, use_compiled):
        r = bench_config(shape, smooth, device, dtype, compiled if use_compiled else None, args.runs, args.min_seconds)
        results.append({"shape": list(shape), "smooth": smooth, **r})
        cells = []
        for mode in MODES:
            m = r[mode]
            cell = f"{m['infaug']['median_ms']:.3f} ms, x{m['speedup_vs_reference']:.2f}"
            if "speedup_vs_compiled" in m:
                cell += f" (compiled x{m['speedup_vs_compiled']:.2f})"
            cells.append(cell)
        print(f"| {tuple(shape)} | {smooth} | " + " | ".join(cells) + " |", flush=True)

    print("| (N, C, H, W) | smooth | forward | fwd+bwd, x requires grad | fwd+bwd, theta only |")
    print("|---|---|---|---|---|")
    for shape in [(256, 3, 32, 32), (256, 1, 28, 28)]:
        for smooth in (3, 5):
            run(shape, smooth, compiled is not None)
    if not args.no_sweep:
        for n in (1, 16, 64, 1024):
            run((n, 3, 32, 32), 3, False)
        for size in (16, 64, 128, 256):
            run((16, 3, size, size), 3, False)

    name = args.out or f"warp-{device.type}"
    path = common.write(name, {"benchmark": "warp", "dtype": args.dtype, "environment": env, "results": results})
    print(f"# wrote {path}")


if __name__ == "__main__":
    main()
