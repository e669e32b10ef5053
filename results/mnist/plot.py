"""Draws results/mnist/accuracy.png from results/mnist.json: for each table of PANELS (the current
tables, those of the committed presets) that results/mnist.json holds, every method's test accuracy on each seed (dots), its mean ± sd (a bar),
and the paper's figure and the project's target for proposed (vertical lines). A footer names the
commands and the machine.

    python results/mnist/gather.py && python results/mnist/plot.py

A method whose seeds all lie far below the others (``none`` at 1%) would squeeze the scale of the
ones that matter, so each panel's scale starts 0.3 points below the lowest seed of the augmenting
methods, and a method entirely below it is written out in words at the panel's left edge instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from infaug.viz import save_figure

# table -> (title, the paper's proposed (None: the paper has no such setting), the project's target)
PANELS = {"1pct": ("1% of the labels, F width 64 (committed preset)", 96.7, 98.0),
          "10pct": ("10% of the labels, F width 64 (committed preset)", 99.3, 99.5),
          "1pct-semi": ("1% of the labels, semi-supervised (committed preset)", None, 99.0),
          "10pct-semi": ("10% of the labels, semi-supervised (committed preset)", None, 99.4)}
NAMES = {"random_g": "random_g", "trivialaugment": "TrivialAugment", "randaugment": "RandAugment", "elastic": "elastic"}
MACHINE = "a 2-core AMD EPYC (Zen 4) VM, torch 2.13.0+cpu, one thread a run"
MARGIN = 0.3  # points of accuracy left free below the lowest seed of the augmenting methods


def panels(gathered: dict) -> list[dict]:
    """What each panel draws: its table, title, lines, scale and, per method (top to bottom),
    the per-seed accuracies, mean, sd and whether it is below the scale."""
    out = []
    for table, (title, paper, aim) in PANELS.items():
        if table not in gathered or "proposed" not in gathered[table]["summary"]:
            continue
        summary = gathered[table]["summary"]
        augmenting = [a for method, s in summary.items() if method != "none" for a in s["test_accuracy"]]
        low = min(augmenting) - MARGIN
        high = max(aim, max(augmenting)) + 0.1
        methods = [{"method": method, "name": NAMES.get(method, method), "seeds": s["test_accuracy"],
                    "mean": s["test_accuracy_mean"], "sd": s["test_accuracy_sd"],
                    "off_scale": max(s["test_accuracy"]) < low} for method, s in summary.items()]
        seeds = summary["proposed"]["seeds"]
        out.append({"table": table, "title": f"{title}: table {table}, {seeds} seeds", "paper": paper, "aim": aim,
                    "xlim": (low, high), "methods": methods})
    return out


def draw(gathered: dict) -> Figure:
    drawn = panels(gathered)
    if not drawn:
        raise SystemExit(f"plot: results/mnist.json holds none of the tables {sorted(PANELS)}")
    figure = Figure(figsize=(8, 2.6 * len(drawn)), layout="constrained")
    for ax, panel in zip(figure.subplots(len(drawn), 1, squeeze=False)[:, 0], drawn, strict=True):
        rows = panel["methods"]
        for y, row in enumerate(rows):
            colour = "tab:red" if row["method"] == "proposed" else "tab:blue"
            if row["off_scale"]:
                ax.text(panel["xlim"][0], y, f"  {row['mean']:.2f} ± {row['sd']:.2f}, below the scale",
                        va="center", ha="left", fontsize=8, color="0.3")
                continue
            ax.scatter(row["seeds"], [y] * len(row["seeds"]), s=14, color=colour, alpha=0.45, zorder=3)
            ax.errorbar(row["mean"], y, xerr=row["sd"], fmt="|", markersize=14, color=colour, capsize=3, zorder=4)
            ax.text(1.01, y, f"{row['mean']:.2f}", va="center", ha="left", fontsize=8, color=colour,
                    transform=ax.get_yaxis_transform())  # the mean, right of the panel
        if panel["paper"] is not None:
            ax.axvline(panel["paper"], color="0.2", linestyle="--", linewidth=1, label=f"paper's proposed, {panel['paper']}")
        ax.axvline(panel["aim"], color="0.2", linestyle=":", linewidth=1, label=f"the project's target, {panel['aim']}")
        ax.set_yticks(range(len(rows)), [row["name"] for row in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)  # the table's order, top to bottom
        ax.set_xlim(*panel["xlim"])
        ax.set_title(panel["title"], fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper right", fontsize=7, frameon=False)
    figure.supxlabel("MNIST test accuracy % (dots: seeds; bar: mean ± sd)\n"
                     f"runs: infaug run --preset mnist-TABLE --seeds S, on {MACHINE}\n"
                     "drawn by: python results/mnist/plot.py (from results/mnist.json)", fontsize=8)
    return figure


def main() -> None:
    root = Path(__file__).resolve().parent
    figure = draw(json.loads((root.parent / "mnist.json").read_text()))
    print(f"wrote {save_figure(figure, root / 'accuracy.png')}")


if __name__ == "__main__":
    main()
