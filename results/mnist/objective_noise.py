"""The noise of E's objective on its old target and its new one (issue 42).

E is trained to make J(E), the mean predicted change of the validation loss when each training
image is replaced by E's augmentation of it (I_aug through F's last layer), negative. J depends on
E's target through s_val = H^-1 g_val, and g_val is a mean over the target's rows t of
g_t = (p_t - e_yt) kron [h_t, 1]. So J is a mean over the target's rows too:

    J(E) = mean_t J_t(E),   J_t(E) = -<H^-1 D(E), g_t>,   D(E) = mean_i (g~_i(E) - g_i)

(g~_i, g_i: the same per-sample gradient at training image i's augmentation and at the image), and
the change E's training makes, dJ = J(E1) - J(E0), is the mean of c_t = J_t(E1) - J_t(E0) over the
target's rows, with the standard error sd(c_t) / sqrt(n) of a mean of n rows: how much of E's
measured progress a fresh draw of the target would keep.

At the F of a proposed run's first round (its warm-up on the semi-supervised preset, tuning seed
100: no test digit is read), E starts at G's prior (E0) and is trained one round (encoder.steps)
against each target, "validation" (the 100 validation digits, the supervised presets' target) and
"pseudo" (those and the held-out unlabelled digits F labels with confidence >= 0.95); and, cross-fitted,
"pseudo half A" (the validation digits and every other pseudo-labelled one); each trained E is then
measured on each target, on the pseudo-labelled rows alone (rows E's training never saw when it
trained on the validation target) and on the other half B of them (rows the half-A E never saw). Every J is over the same augmentation draws of E0 and E1
(``--draws`` of them, common random numbers), so the spread is the target's alone.

    OMP_NUM_THREADS=1 python results/mnist/objective_noise.py --data-dir ../shared/data
    # writes results/mnist/objective-noise/1pct-seed100.json and .png
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from infaug.config import load_preset
from infaug.engine import conjugate_gradients
from infaug.run import pretrain, resolve_device
from infaug.train.classifier import features, influence_engine
from infaug.train.encoder import LastLayerObjective, train_encoder
from infaug.train.loop import _start, _train_f, round_epochs  # the loop's own start and F training: F is a proposed run's
from infaug.train.methods import make_augmentation
from infaug.train.target import e_target
from infaug.train.task import build_task, load_pool
from infaug.util.seeds import rng as seeded
from infaug.viz import save_figure

OUT = Path(__file__).resolve().parent / "objective-noise"


def row_gradients(model, images, labels, weight, bias) -> torch.Tensor:
    """g_t (T, K * P) in float64: each row's gradient of the cross-entropy in F's last layer."""
    h = features(model, images).double()
    p = torch.softmax(F.linear(h, weight.double(), bias.double()), 1)
    residual = p - F.one_hot(labels, weight.shape[0]).double()
    return (residual[:, :, None] * F.pad(h, (0, 1), value=1.0)[:, None, :]).flatten(1)


def augmented_gradient(model, augment, images, labels, weight, bias, draws: int) -> torch.Tensor:
    """D(E) (K * P,): the mean over the images and ``draws`` draws of g~_i - g_i."""
    base = row_gradients(model, images, labels, weight, bias).mean(0)
    total = torch.zeros_like(base)
    for draw in range(draws):
        with torch.no_grad():
            x_aug = augment(images, torch.Generator().manual_seed(10_000 + draw))
        total += row_gradients(model, x_aug, labels, weight, bias).mean(0)
    return total / draws - base


def contributions(engine, d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """J_t (T,) = -<H^-1 D, g_t> for each target row."""
    k, p = engine.num_classes, engine.num_params
    solution, _, residual = conjugate_gradients(engine.hessian_vector_product, d.view(k, p), tol=1e-12, max_iter=5000)
    if residual > 1e-8:
        raise SystemExit(f"objective_noise: the solve did not converge (relative residual {residual:.1e})")
    return -(g @ solution.reshape(-1))


def mean_se(values: torch.Tensor) -> dict:
    """The mean of ``values`` (one per target row), its standard error and their ratio (None
    below two rows)."""
    n = len(values)
    if n < 2:
        return {"rows": n, "mean": float(values.mean()) if n else None, "se": None, "mean_over_se": None}
    mean, se = float(values.mean()), float(values.std()) / math.sqrt(n)
    return {"rows": n, "mean": mean, "se": se, "mean_over_se": mean / se if se > 0 else None}


def measure(args) -> dict:
    config = load_preset(f"mnist-{args.setting}-semi").replace({"data.data_dir": args.data_dir, **dict(kv.split("=", 1) for kv in args.set)})
    device = resolve_device("cpu")
    pool, official_test = load_pool(config)
    task = build_task(config, args.seed, device, pool, official_test)
    started = time.perf_counter()
    cache = args.out / f"{args.setting}-seed{args.seed}-state.pt"  # G and the warmed-up F and E0 (not committed: *.pt)
    warm = round_epochs(config.classifier.epochs, config.loop.rounds, config.loop.warmup)[0]
    saved = torch.load(cache, weights_only=True) if cache.exists() else None
    if saved is not None:
        generator = task.make_generator()
        generator.load_state_dict(saved["G"])
        generator.eval().requires_grad_(False)  # as pretrain leaves it
        g_seconds = saved["g_seconds"]
    else:
        generator, g_seconds, _ = pretrain(task, config, args.seed)
    state = _start("proposed", task, config, args.seed, None, None)
    augment = make_augmentation("proposed", task, config, generator, state.encoder)
    if saved is not None:
        state.trainer.model.load_state_dict(saved["F"])
        state.encoder.load_state_dict(saved["E"])
    else:
        _train_f(state, task, config, augment, warm, f"seed {args.seed} proposed F warm-up")
        args.out.mkdir(exist_ok=True, parents=True)
        torch.save({"G": generator.state_dict(), "F": state.trainer.model.state_dict(), "E": state.encoder.state_dict(),
                    "g_seconds": g_seconds}, cache)
    model, encoder, e = state.trainer.model, state.encoder, config.encoder
    with torch.no_grad():
        train_augmented = augment(task.train[0], seeded(args.seed, "measurements"))  # as the loop's measurement draws it
    *pseudo_target, pseudo_count = e_target(model, task.validation, task.target_images, e.target_threshold)
    n_val = len(task.validation[1])
    half_a, half_b = slice(n_val, None, 2), slice(n_val + 1, None, 2)  # the pseudo-labelled rows, alternately
    half = (torch.cat([task.validation[0], pseudo_target[0][half_a]]), torch.cat([task.validation[1], pseudo_target[1][half_a]]))
    # cross-fitting: E trained on the validation digits and half A of the pseudo-labelled ones, measured on half B
    targets = {"validation": task.validation, "pseudo": tuple(pseudo_target), "pseudo half A": half}
    engines = {name: influence_engine(model, task.train, target, damping=config.classifier.damping, train_augmented=train_augmented)
               for name, target in targets.items()}
    weight, bias = engines["validation"].weight, engines["validation"].bias  # F's head, the same in both
    g = {name: row_gradients(model, *target, weight, bias) for name, target in targets.items()}
    g["pseudo rows alone"] = g["pseudo"][n_val:]
    g["pseudo half B"] = g["pseudo"][half_b]
    rows = task.encoder_rows
    images, labels = task.train[0][rows], task.train[1][rows]
    encoder.eval()
    start_state = copy.deepcopy(encoder.state_dict())
    d0 = augmented_gradient(model, augment, images, labels, weight, bias, args.draws)
    # the formula's check: on one draw, the mean of the rows' J_t is the engine's own J (its s_val)
    check = {}
    for name, engine in engines.items():
        with torch.no_grad():
            x_aug = augment(images, torch.Generator().manual_seed(10_000))
            engine_j = float(engine.aug(features(model, images), features(model, x_aug), labels).mean())
        rows_j = float(contributions(engine, augmented_gradient(model, augment, images, labels, weight, bias, 1), g[name]).mean())
        if abs(rows_j - engine_j) > 1e-3 * abs(engine_j):
            raise SystemExit(f"objective_noise: the rows' J {rows_j} is not the engine's {engine_j} on target {name}")
        check[name] = {"engine": engine_j, "rows": rows_j}

    out = {"setting": args.setting, "seed": args.seed, "draws": args.draws, "warmup_epochs": warm,
           "target_rows": {name: len(v) for name, v in g.items()}, "pseudo_labelled": pseudo_count,
           "held_out": len(task.target_images), "encoder_steps": e.steps, "check_J_E0_one_draw": check, "trained_on": {}}
    for trained_on, engine in engines.items():
        encoder.load_state_dict(start_state)
        objective = LastLayerObjective(model, engine, images, labels)
        history = train_encoder(encoder, generator, objective, images, labels, steps=e.steps, batch_size=e.batch_size, lr=e.lr,
                                penalty=e.tau_penalty, rng=seeded(args.seed, "E steps"), kl=e.kl, clip=e.clip,
                                label=f"E against {trained_on}", noise_rng=seeded(args.seed, "E noise"))
        d1 = augmented_gradient(model, augment, images, labels, weight, bias, args.draws)
        measured = {}
        for name, rows_g in g.items():  # H is the same in both engines (the same training rows)
            j0, j1 = contributions(engine, d0, rows_g), contributions(engine, d1, rows_g)
            measured[name] = {"J_E0": mean_se(j0), "J_E1": mean_se(j1), "change": mean_se(j1 - j0)}
        out["trained_on"][trained_on] = {"measured_on": measured, "steps_mean_change": history}
    out["seconds"] = time.perf_counter() - started
    out["g_seconds"] = g_seconds
    return out


def draw(result: dict) -> Figure:
    """E's change dJ in standard errors of the target's rows (bars; |dJ| < 2 se: within the noise),
    for E trained on each target, measured on each, the change and its se written beside."""
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    ax = figure.subplots()
    labels = []
    for trained_on, entry in result["trained_on"].items():
        colour = "tab:blue" if trained_on == "validation" else "tab:red"
        for measured_on, m in entry["measured_on"].items():
            c = m["change"]
            y = len(labels)
            labels.append(f"E trained on {trained_on}, measured on {measured_on} ({c['rows']} rows)")
            if c["se"] is None:
                continue
            ax.barh(y, c["mean_over_se"], color=colour, alpha=0.8)
            ax.text(0.3, y, f"{c['mean']:+.4f} ± {c['se']:.4f}", va="center", ha="left", fontsize=7)
    for x in (-2, 2):
        ax.axvline(x, color="0.3", linestyle=":", linewidth=1)
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(min(-3.0, ax.get_xlim()[0]), 6.0)  # room for the figures on the right
    ax.set_xlabel("E's one-round change of J (mean I_aug; negative is progress) in standard errors over the target's rows\n"
                  "(dotted: ±2; written: the change ± its standard error)", fontsize=7)
    figure.suptitle(f"MNIST {result['setting']}, tuning seed {result['seed']}, F after its warm-up ({result['warmup_epochs']} epochs): "
                    "E's step against the noise of its target", fontsize=8)
    figure.supxlabel("made by: OMP_NUM_THREADS=1 python results/mnist/objective_noise.py --data-dir DATA "
                     "(2-core AMD EPYC VM, torch 2.13.0+cpu, one thread)", fontsize=7)
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="the folder holding MNIST/raw")
    parser.add_argument("--setting", choices=["1pct", "10pct"], default="1pct")
    parser.add_argument("--seed", type=int, default=100, help="a tuning seed (default 100), not a reported one")
    parser.add_argument("--draws", type=int, default=4, help="augmentation draws per J (common to E0 and E1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a configuration override (for a quick look; the committed result has none)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--redraw", action="store_true", help="only draw the picture again from the JSON in --out")
    args = parser.parse_args()
    if args.redraw:
        stem = args.out / f"{args.setting}-seed{args.seed}"
        print(f"wrote {save_figure(draw(json.loads(stem.with_suffix('.json').read_text())), stem.with_suffix('.png'))}")
        return
    result = measure(args)
    result["overrides"] = args.set
    args.out.mkdir(exist_ok=True, parents=True)
    stem = args.out / f"{args.setting}-seed{args.seed}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {stem.with_suffix('.json')} and {save_figure(draw(result), stem.with_suffix('.png'))}")
    for trained_on, entry in result["trained_on"].items():
        for measured_on, m in entry["measured_on"].items():
            c = m["change"]
            if c["se"] is None:
                print(f"E trained on {trained_on:10s} measured on {measured_on:18s} ({c['rows']:5d} rows): too few rows")
                continue
            print(f"E trained on {trained_on:10s} measured on {measured_on:18s} ({c['rows']:5d} rows): "
                  f"J(E0) {m['J_E0']['mean']:+.5f} ± {m['J_E0']['se']:.5f}, change {c['mean']:+.5f} ± {c['se']:.5f} "
                  f"({c['mean_over_se']:+.1f} se)")


if __name__ == "__main__":
    main()
