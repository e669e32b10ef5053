"""The influence engine toward an ImageNet-sized head (issue 13): what one cg Hessian-vector
product, the exact Hessian and the ``influence`` op cost as N, D and K grow, measured where they fit
on this machine and extrapolated where they do not, with the memory per rank and the bytes each
all-reduce carries for P ranks.

    python benchmarks/bench_scale.py                      # writes benchmarks/results/scale-<device>.json
    python benchmarks/bench_scale.py --quick              # small sizes only (a smoke run)

Costs are counted by ``infaug.engine.solver_costs`` (multiply-adds and bytes; the same function
``method="auto"`` decides with). The measurements give this machine's rate in multiply-adds per
second for each kind of work (measured at the target's D and K where it was, so that only N is
extrapolated; else the median over the sizes measured); a size that does not fit is
extrapolated as its count over that rate, divided by P ranks for the work that is sharded (the
training samples), not for what every rank repeats (the exact Hessian's factorisation). Times of
the all-reduces themselves are not modelled (their payloads are given): on one node they are small
next to the products at these sizes, across nodes they depend on the network.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

from infaug import LastLayerInfluence, influence  # noqa: E402
from infaug.engine import solver_costs  # noqa: E402

IMAGENET = (1_281_167, 2048, 1000)  # N, D, K of an ImageNet-sized head
TARGETS = [(50_000, 2048, 100), (1_281_167, 2048, 100), IMAGENET]
RANKS = (1, 2, 8, 64)
MEMORY = 3 << 30  # what a measured problem may take on this machine


def timed(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def problem(n: int, d: int, k: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    w, b = 0.05 * torch.randn(k, d, generator=g), torch.zeros(k)
    return h, y, w, b


def measure_hvp(n, d, k) -> dict:
    h, y, w, b = problem(n, d, k)
    engine = LastLayerInfluence(w, b, method="cg").fit(h, y)
    v = torch.randn(k, d + 1, dtype=torch.float64)
    seconds = timed(lambda: engine.hessian_vector_product(v))
    macs = solver_costs(k, d, n=n)["cg_hvp_macs_per_sample"] * n
    return {"kind": "cg_hvp", "N": n, "D": d, "K": k, "seconds": seconds, "macs": macs, "rate": macs / seconds}


def measure_exact(n, d, k) -> dict:
    h, y, w, b = problem(n, d, k)
    costs = solver_costs(k, d, n=n)
    fit = timed(lambda: LastLayerInfluence(w, b, method="exact").fit(h, y), repeats=2)
    engine = LastLayerInfluence(w, b, method="exact").fit(h, y)
    g = torch.randn(k, d + 1, dtype=torch.float64)
    solve = timed(lambda: engine._solve_exact(g), repeats=2)
    return {"kind": "exact", "N": n, "D": d, "K": k, "fit_seconds": fit, "solve_seconds": solve,
            "macs": costs["exact_macs_per_sample"] * n, "rate": costs["exact_macs_per_sample"] * n / fit,
            "factor_macs": costs["exact_factor_macs"], "factor_rate": costs["exact_factor_macs"] / solve,
            "hessian_bytes": costs["exact_bytes"]}


def measure_influence(n, d, k) -> dict:
    h, y, w, b = problem(n, d, k)
    s_w, s_b = 0.01 * torch.randn(k, d), 0.01 * torch.randn(k)
    seconds = timed(lambda: influence(h, y, w, b, s_w, s_b))
    macs = solver_costs(k, d, n=n)["influence_macs_per_sample"] * n
    return {"kind": "influence", "N": n, "D": d, "K": k, "seconds": seconds, "macs": macs, "rate": macs / seconds}


def rates_for(measured: list[dict], d: int, k: int) -> dict:
    """Multiply-adds per second of each kind of work: measured at this head's D and K where it was
    (so only N is extrapolated), else the median over every size measured."""
    rates = {}
    for kind in ("cg_hvp", "exact", "influence"):
        rows = [r for r in measured if r["kind"] == kind]
        same = [r for r in rows if (r["D"], r["K"]) == (d, k)]
        rates[kind] = statistics.median(r["rate"] for r in (same or rows))
        rates[f"{kind}_from"] = "this D and K" if same else "median of all sizes"
    rates["exact_factor"] = statistics.median(r["factor_rate"] for r in measured if r["kind"] == "exact")
    return rates


def extrapolate(n, d, k, measured: list[dict]) -> list[dict]:
    rates = rates_for(measured, d, k)
    rows = []
    for ranks in RANKS:
        c = solver_costs(k, d, n=n, ranks=ranks)
        shard = -(-n // ranks)
        hvp = c["cg_hvp_macs_per_sample"] * shard / rates["cg_hvp"]
        rows.append({
            "N": n, "D": d, "K": k, "ranks": ranks, "params": c["params"],
            "cg_hvp_seconds": hvp, "cg_iterations_bound": c["cg_iterations"], "cg_solve_seconds_bound": hvp * c["cg_iterations"],
            "cg_bytes_per_rank": c["cg_bytes_per_rank"], "cg_all_reduce_bytes": c["cg_all_reduce_bytes"],
            "ring_bytes_per_rank_per_hvp": 2 * (ranks - 1) / ranks * c["cg_all_reduce_bytes"],
            "exact_hessian_bytes_per_rank": c["exact_bytes"],
            "exact_fit_seconds": c["exact_macs_per_sample"] * shard / rates["exact"],
            "exact_factor_seconds": c["exact_factor_macs"] / rates["exact_factor"],
            "influence_seconds": c["influence_macs_per_sample"] * shard / rates["influence"],
            "auto": _auto(k, d), "rates": rates,
        })
    return rows


def _auto(k: int, d: int) -> str:
    """What method="auto" picks for this head (its choice does not depend on N)."""
    return LastLayerInfluence(torch.zeros(k, d), torch.zeros(k)).method


def human(value: float, unit: str) -> str:
    if unit == "B":
        for name, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if value >= size:
                return f"{value / size:.3g} {name}"
        return f"{value:.0f} B"
    for name, size in (("h", 3600), ("min", 60), ("s", 1), ("ms", 1e-3)):
        if value >= size:
            return f"{value / size:.3g} {name}"
    return f"{value * 1e6:.3g} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument("--from", dest="source", default=None, help="extrapolate again from the measurements of this JSON file")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.quick:
        hvp_sizes = [(2000, 64, 10), (4000, 128, 10)]
        exact_sizes = [(1000, 64, 10), (1000, 128, 10)]
        influence_sizes = [(2000, 64, 10), (4000, 128, 10)]
    else:
        hvp_sizes = [(n, d, k) for n in (10_000, 50_000, 200_000) for d in (512, 2048) for k in (10, 100, 1000)]
        exact_sizes = [(5000, 64, 10), (5000, 128, 10), (5000, 256, 10), (5000, 512, 10), (2000, 64, 100)]
        influence_sizes = [(50_000, d, k) for d in (512, 2048) for k in (10, 100, 1000)]
    fits = lambda n, d, k: solver_costs(k, d, n=n)["cg_bytes_per_rank"] + n * k * 8 * 2 <= MEMORY  # noqa: E731
    measured = json.loads(Path(args.source).read_text())["measured"] if args.source else []
    for sizes, fn in [] if args.source else ((hvp_sizes, measure_hvp), (exact_sizes, measure_exact), (influence_sizes, measure_influence)):
        for n, d, k in sizes:
            if fn is not measure_exact and not fits(n, d, k):
                print(f"skip {fn.__name__} N={n} D={d} K={k}: above {MEMORY >> 30} GiB here", flush=True)
                continue
            row = fn(n, d, k)
            measured.append(row)
            print(json.dumps(row), flush=True)
    rates = rates_for(measured, 0, 0)  # the medians over every size
    targets = TARGETS if not args.quick else [(100_000, 512, 100)]
    extrapolated = [row for n, d, k in targets for row in extrapolate(n, d, k, measured)]
    environment = json.loads(Path(args.source).read_text())["environment"] if args.source else common.environment(torch.device("cpu"))
    result = {"environment": environment, "threads": torch.get_num_threads(), "load_average": os.getloadavg(),
              "rates_macs_per_second": rates, "measured": measured, "extrapolated": extrapolated}
    device = "cpu"
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"scale-{device}{'-quick' if args.quick else ''}.json")
    out.write_text(json.dumps(result, indent=1))
    print("\nrates (multiply-adds per second, medians): " + ", ".join(f"{k} {v / 1e9:.1f} G" for k, v in rates.items() if not k.endswith("_from")))
    print("\n| N | D | K | ranks | auto | cg H v | cg memory / rank | all-reduce / H v | exact Hessian / rank | exact fit | influence over N |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in extrapolated:
        print(f"| {r['N']} | {r['D']} | {r['K']} | {r['ranks']} | {r['auto']} | {human(r['cg_hvp_seconds'], 's')} | "
              f"{human(r['cg_bytes_per_rank'], 'B')} | {human(r['cg_all_reduce_bytes'], 'B')} | "
              f"{human(r['exact_hessian_bytes_per_rank'], 'B')} | {human(r['exact_fit_seconds'], 's')} | "
              f"{human(r['influence_seconds'], 's')} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
