"""Speed of the learning system's steps with infaug's fused ops against the same steps in plain torch.

    python benchmarks/bench_pipeline.py              # CPU, writes benchmarks/results/pipeline-cpu.json
    python benchmarks/bench_pipeline.py --device cuda

The steps are those of the default preset (28 x 28 digits, the four-layer CNN of width 32, G and E
at their defaults), each a forward, a backward and an optimiser step:
  - E step: E's loss on a batch of 256 labelled samples (tau = E(x), x~ = augment(x, G(tau)),
    I_aug through ``influence``) and its gradient into E (``infaug.train.encoder.encoder_loss``);
  - F step: a batch of 64 originals plus their augmentations by G with tau from the prior.
Each runs once with infaug's fused ``augment`` and ``influence`` and once with the same definitions
in torch ops (``infaug.reference``), interleaved in one process. Correctness first: the two give
the same loss and gradients. The share of a fused step spent inside infaug's ops is read from
torch.profiler. With ``--metrics`` (a run's ``metrics.json``), the mean wall time of each method of
that run is added to the results.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compare, environment, write  # noqa: E402

from infaug import ops as fused, reference  # noqa: E402
from infaug.models import AllConvNet, Encoder, Generator  # noqa: E402
from infaug.train.classifier import influence_engine  # noqa: E402
from infaug.train.encoder import LastLayerObjective, encoder_loss  # noqa: E402
from infaug.train.modes import frozen  # noqa: E402


def setup(device, seed=0):
    torch.manual_seed(seed)
    from infaug.data import embedded_digits

    try:
        digits = embedded_digits()
        images, labels = digits.images[:600].to(device), digits.labels[:600].to(device)
    except FileNotFoundError:
        images, labels = torch.rand(600, 1, 28, 28, device=device), (torch.arange(600) % 10).to(device)
    model = AllConvNet(1, 10, 32).to(device)
    generator = Generator(1, 28, 28).to(device)
    for layer in (generator.spatial[-1], generator.spatial_global, generator.appearance[-1]):
        torch.nn.init.normal_(layer.weight, std=0.02)  # a G away from the identity, as after pre-training
    encoder = Encoder(1, 128).to(device)
    torch.nn.init.normal_(encoder.net[-1].weight, std=0.05)
    engine = influence_engine(model, (images[:400], labels[:400]), (images[400:500], labels[400:500]), damping=0.01)
    return model, generator, encoder, engine, images, labels


def e_step(model, generator, encoder, engine, x, y, optimizer, ops):
    with frozen(model, generator):
        objective = LastLayerObjective(model, engine, x, y, ops=ops)
    rows = torch.arange(len(x), device=x.device)

    def step():
        with frozen(model, generator):
            loss, _ = encoder_loss(encoder, generator, objective, x, y, rows, penalty=1.0,
                                   rng=torch.Generator().manual_seed(0), ops=ops)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        return loss

    return step


def f_step(model, generator, x, y, optimizer, ops):
    def step():
        model.train()
        with torch.no_grad():
            params = generator.transform_parameters(generator.sample_latent(len(x), generator=torch.Generator().manual_seed(0)))
            x_aug = ops.augment(x, *params, smooth=generator.smooth)
        loss = F.cross_entropy(model(torch.cat([x, x_aug])), torch.cat([y, y]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    return step


def op_share(step, runs=20) -> dict:
    """Seconds per step inside infaug's ops (forward and backward kernels) over the profiled wall time."""
    from torch.profiler import ProfilerActivity, profile

    step()
    import time

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(runs):
            step()
        wall = time.perf_counter() - start
    inside = {e.key: e.cpu_time_total / 1e6 / runs for e in prof.key_averages() if e.key.startswith("infaug::")}
    return {"ops_ms": {k: 1e3 * v for k, v in inside.items()}, "share": sum(inside.values()) / (wall / runs)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--metrics", default=None, help="a run's metrics.json, for the wall time of each method")
    parser.add_argument("--out", default=None, help="results name (default: pipeline-<device>)")
    args = parser.parse_args()
    device = torch.device(args.device)
    model, generator, encoder, engine, images, labels = setup(device)
    results = {"environment": environment(device), "steps": {}}

    x, y = images[:256], labels[:256]
    optimizer = torch.optim.Adam(encoder.parameters(), lr=0)  # lr 0: every run sees the same E
    e_fused = e_step(model, generator, encoder, engine, x, y, optimizer, fused)
    e_ref = e_step(model, generator, encoder, engine, x, y, optimizer, reference)
    fx, fy = images[:64], labels[:64]
    f_optimizer = torch.optim.SGD(model.parameters(), lr=0)
    f_fused, f_ref = f_step(model, generator, fx, fy, f_optimizer, fused), f_step(model, generator, fx, fy, f_optimizer, reference)

    # Correctness first: the same loss and the same gradients through either set of ops.
    for name, (a, b, params) in {"E step": (e_fused, e_ref, list(encoder.parameters())), "F step": (f_fused, f_ref, list(model.parameters()))}.items():
        loss_a = a()
        grads_a = [p.grad.clone() for p in params]
        loss_b = b()
        torch.testing.assert_close(loss_a, loss_b, rtol=1e-4, atol=1e-5)
        for ga, p in zip(grads_a, params):
            # entries near zero are the sums of terms that cancel: absolute tolerance relative to the largest
            torch.testing.assert_close(ga, p.grad, rtol=1e-3, atol=1e-3 * float(p.grad.abs().max()) + 1e-7)
        print(f"{name}: fused and reference agree (loss {float(loss_a):.5f})")

    for name, fused_step, ref_step in (("E step (batch 256)", e_fused, e_ref), ("F step (64 + 64 augmented)", f_fused, f_ref)):
        timing = compare({"infaug": fused_step, "reference": ref_step}, device, runs=args.runs, block=5)
        share = op_share(fused_step)
        ratio = timing["reference"]["median_ms"] / timing["infaug"]["median_ms"]
        results["steps"][name] = {**timing, "ratio": ratio, "infaug_ops": share}
        print(f"{name}: infaug {timing['infaug']['median_ms']:.1f} ms, reference {timing['reference']['median_ms']:.1f} ms, "
              f"x{ratio:.2f}; {100 * share['share']:.0f}% of the fused step inside infaug's ops "
              + ", ".join(f"{k} {v:.2f} ms" for k, v in share["ops_ms"].items()))

    if args.metrics:
        with open(args.metrics) as f:
            metrics = json.load(f)
        seconds = {m: sum(v["seconds"]) / len(v["seconds"]) for m, v in metrics["methods"].items() if v["seconds"]}
        results["run"] = {"metrics": args.metrics, "preset": metrics["config"].get("preset"), "seconds": seconds,
                          "seeds": len(next(iter(metrics["methods"].values()))["seconds"])}
        print("wall time of each method in that run (mean over seeds): " + ", ".join(f"{m} {s:.1f} s" for m, s in seconds.items()))
    print("wrote", write(args.out or f"pipeline-{device.type}", results))


if __name__ == "__main__":
    main()
