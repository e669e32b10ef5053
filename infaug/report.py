"""The pictures and the HTML report of an ``infaug run``.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (the Agg renderer, no
pyplot and so no global state); every file is written to ``NAME.tmp`` first and then moved into
place with :func:`os.replace`, so a reader never sees a half-written picture or page.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from infaug.util.atomic import atomic_write
from infaug.viz import image_grid, save_figure

CLASS_COLOURS = ("tab:blue", "tab:red")
TOY_COLUMNS = (
    "(a) training data, before augmentation",
    "(b) validation data, before augmentation",
    "(c) augmented training data, after",
    "(d) validation data, after augmentation",
)


def _numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


def save_augmentations(originals: Tensor, augmented: dict[str, Tensor], path: str | Path) -> Path:
    """Draws the originals and each method's augmentations of them, one labelled row each.

    Args:
        originals: (N, C, H, W) images in [0, 1], C = 1 or 3.
        augmented: method name -> (N, C, H, W) augmentations of ``originals`` (same shape).
        path: where the PNG goes.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: when ``originals`` is not (N >= 1, 1 or 3, H, W) or a method's tensor does not
            have the shape of ``originals``.
    """
    if originals.dim() != 4 or originals.shape[0] == 0 or originals.shape[1] not in (1, 3):
        raise ValueError(f"originals must have shape (N, 1 or 3, H, W), got {tuple(originals.shape)}")
    for name, images in augmented.items():
        if images.shape != originals.shape:
            raise ValueError(
                f"augmented[{name!r}] must have shape {tuple(originals.shape)}, got {tuple(images.shape)}"
            )
    rows = [("original", originals), *augmented.items()]
    n, _, h, w = originals.shape
    figure = Figure(figsize=(max(4.0, 0.6 * n * w / h + 0.3), 0.7 * len(rows) + 0.3), layout="constrained")
    for ax, (name, images) in zip(figure.subplots(len(rows), 1, squeeze=False)[:, 0], rows):
        ax.imshow(image_grid(images.float().clamp(0, 1), columns=n), cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
        ax.set_title(name, loc="left", fontsize=9, pad=2)  # above the row: a long name is never cut off
    return save_figure(figure, path)


def save_flow_fields(
    displacements: Tensor,
    path: str | Path,
    *,
    images: Tensor | None = None,
    columns: int = 8,
    step: int = 3,
) -> Path:
    """Draws each sample's displacement field as quiver arrows, optionally over its image.

    Args:
        displacements: (N, 2, H, W) displacements in normalised coordinates (x then y, as
            :func:`torch.nn.functional.affine_grid`: +x right, +y down the image rows).
        path: where the PNG goes.
        images: optional (N, C, H, W) images in [0, 1] drawn in grey under the arrows.
        columns: panels per row.
        step: draw one arrow every ``step`` pixels in each direction.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    if displacements.dim() != 4 or displacements.shape[1] != 2 or displacements.shape[0] == 0:
        raise ValueError(f"displacements must have shape (N, 2, H, W), got {tuple(displacements.shape)}")
    n, _, h, w = displacements.shape
    if images is not None and (images.dim() != 4 or images.shape[0] != n or images.shape[2:] != (h, w)):
        raise ValueError(f"images must have shape ({n}, C, {h}, {w}), got {tuple(images.shape)}")
    cols, rows = min(n, columns), -(-n // columns)
    figure = Figure(figsize=(1.8 * cols, 1.8 * rows), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    flow = _numpy(displacements[:, :, ::step, ::step])
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k >= n:
            continue
        if images is not None:
            grey = _numpy(images[k].float().clamp(0, 1).mean(0))
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1, origin="upper")
        # pixel units; with the row axis pointing down, +v draws downwards as it should
        u, v = flow[k, 0] * w / 2, flow[k, 1] * h / 2
        ax.quiver(xs, ys, u, v, color="tab:red", angles="xy", scale_units="xy", scale=1, width=0.01)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_aspect("equal")
    return save_figure(figure, path)


def save_influence_histogram(
    distributions: dict[str, Tensor], path: str | Path, *, title: str = "I_aug", quantity: str = "I_aug"
) -> Path:
    """Overlays histograms (shared bins) of I_aug values, each mean marked by a dashed line.

    Args:
        distributions: name -> 1-D tensor of I_aug values, e.g. ``{"before training E": ...}``.
        path: where the PNG goes.
        title: the figure's title. quantity: the name on the x axis.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    values = {name: _numpy(v).ravel() for name, v in distributions.items()}
    values = {name: v[np.isfinite(v)] for name, v in values.items()}
    values = {name: v for name, v in values.items() if v.size}
    if not values:
        raise ValueError("distributions holds no finite values")
    bins = np.histogram_bin_edges(np.concatenate(list(values.values())), bins=40)
    figure = Figure(figsize=(7, 4), layout="constrained")
    ax = figure.subplots()
    colours = [f"C{k % 10}" for k in range(len(values))]
    for colour, (name, v) in zip(colours, values.items()):
        mean = float(v.mean())
        ax.hist(v, bins=bins, alpha=0.45, color=colour, label=f"{name} (mean {mean:.3g})")
        ax.axvline(mean, color=colour, linestyle="--", linewidth=1.5)
    ax.set_title(title)
    ax.set_xlabel(f"{quantity} (negative = predicted to lower the validation loss)")
    ax.set_ylabel("count")
    ax.legend()
    return save_figure(figure, path)


def _points(row: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    points, labels = row[key]
    if points.dim() != 2 or points.shape[1] != 2 or labels.shape != points.shape[:1]:
        raise ValueError(
            f"row[{key!r}] must be points (N, 2) and labels (N,), got {tuple(points.shape)} and {tuple(labels.shape)}"
        )
    return _numpy(points), labels.detach().cpu().long().numpy()


def _probability_map(ax, predict: Callable[[Tensor], Tensor], box: tuple[float, float, float, float]) -> None:
    """Fills ``ax`` with predict's probability of class 1 over ``box`` and its 0.5 level line."""
    x0, x1, y0, y1 = box
    gx, gy = np.meshgrid(np.linspace(x0, x1, 150), np.linspace(y0, y1, 150))
    grid = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1)).float()
    with torch.no_grad():
        p = _numpy(predict(grid).reshape(-1))
    if p.size != grid.shape[0]:
        raise ValueError(f"predict must map (M, 2) points to (M,) probabilities, got {p.size} for M={grid.shape[0]}")
    p = p.reshape(gx.shape)
    ax.contourf(gx, gy, p, levels=np.linspace(0, 1, 11), cmap="coolwarm", alpha=0.4)
    if p.min() < 0.5 < p.max():
        ax.contour(gx, gy, p, levels=[0.5], colors="black", linewidths=1.2)


def _scatter(ax, points: np.ndarray, labels: np.ndarray, **style) -> None:
    for label, colour in enumerate(CLASS_COLOURS):
        chosen = labels == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=12, color=colour, edgecolors="none", **style)


def save_toy2d_figure(rows: list[dict], path: str | Path) -> Path:
    """Draws Figure 3 of the paper: the 2-D toy problem before and after learned augmentation.

    Args:
        rows: one dict per figure row with keys ``"title"`` (str); ``"train"``, ``"validation"``
            and ``"augmented"`` (each a (points (N, 2), labels (N,) int64 in {0, 1}) pair);
            ``"predict_before"`` and ``"predict_after"`` (callables mapping (M, 2) float32 points
            to (M,) probabilities of class 1); optionally ``"augmented_from"``, the (N, 2) original
            of each augmented point, drawn as arrows for a subset.
        path: where the PNG goes.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    if not rows:
        raise ValueError("rows must hold at least one row")
    figure = Figure(figsize=(14, 3.4 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), 4, squeeze=False)
    for r, row in enumerate(rows):
        train, validation, augmented = (_points(row, key) for key in ("train", "validation", "augmented"))
        origins = _numpy(row["augmented_from"]) if row.get("augmented_from") is not None else None
        everything = np.concatenate([train[0], validation[0], augmented[0]] + ([origins] if origins is not None else []))
        low, high = everything.min(0), everything.max(0)
        margin = 0.1 * np.maximum(high - low, 1e-3) + 0.1
        box = (low[0] - margin[0], high[0] + margin[0], low[1] - margin[1], high[1] + margin[1])
        panels = [
            (row["predict_before"], [(train, {})]),
            (row["predict_before"], [(validation, {})]),
            (row["predict_after"], [(train, {"alpha": 0.15}), (augmented, {"marker": "^"})]),
            (row["predict_after"], [(validation, {})]),
        ]
        for c, (ax, (predict, layers)) in enumerate(zip(axes[r], panels)):
            _probability_map(ax, predict, box)
            for (points, labels), style in layers:
                _scatter(ax, points, labels, **style)
            if c == 2 and origins is not None:
                chosen = np.linspace(0, len(origins) - 1, min(len(origins), 40)).round().astype(int)
                delta = augmented[0][chosen] - origins[chosen]
                ax.quiver(*origins[chosen].T, *delta.T, angles="xy", scale_units="xy", scale=1,
                          color="0.25", width=0.004)
            ax.set_xlim(box[0], box[1])
            ax.set_ylim(box[2], box[3])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(TOY_COLUMNS[c], fontsize=10)
        axes[r, 0].set_ylabel(row["title"])
    return save_figure(figure, path)


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample (ddof=1) standard deviation; nan for no values, std 0.0 for one."""
    if not values:
        return math.nan, math.nan
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), (float(array.std(ddof=1)) if array.size > 1 else 0.0)


def accuracy_rows(metrics: dict) -> list[dict]:
    """One summary row per method of ``metrics["methods"]``, in order; methods without accuracies are skipped.

    Args:
        metrics: ``{"methods": {NAME: {"test_accuracy": [...], "test_loss": [...], "val_loss": [...],
            "seconds": [...]}}}``, one entry per seed, accuracies as fractions.

    Returns:
        Dicts with keys method, seeds, test_accuracy_mean, test_accuracy_std (fractions),
        test_loss_mean, test_loss_std, val_loss_mean, seconds_mean; std is ddof=1, 0.0 for one seed.
    """
    rows = []
    for name, runs in metrics.get("methods", {}).items():
        if not runs.get("test_accuracy"):
            continue
        accuracy, accuracy_std = _mean_std(runs["test_accuracy"])
        test_loss, test_loss_std = _mean_std(runs.get("test_loss", []))
        rows.append({
            "method": name,
            "seeds": len(runs["test_accuracy"]),
            "test_accuracy_mean": accuracy,
            "test_accuracy_std": accuracy_std,
            "test_loss_mean": test_loss,
            "test_loss_std": test_loss_std,
            "val_loss_mean": _mean_std(runs.get("val_loss", []))[0],
            "seconds_mean": _mean_std(runs.get("seconds", []))[0],
        })
    return rows


HEADERS = ("method", "seeds", "test acc % (mean ± sd)", "test loss", "val loss", "seconds")


def _number(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _cells(row: dict) -> list[str]:
    return [
        str(row["method"]),
        str(row["seeds"]),
        f"{_number(100 * row['test_accuracy_mean'], 2)} ± {_number(100 * row['test_accuracy_std'], 2)}",
        f"{_number(row['test_loss_mean'], 4)} ± {_number(row['test_loss_std'], 4)}",
        _number(row["val_loss_mean"], 4),
        _number(row["seconds_mean"], 1),
    ]


def accuracy_table(metrics: dict) -> str:
    """The rows of :func:`accuracy_rows` as an HTML ``<table>``, the best mean accuracy in bold."""
    rows = accuracy_rows(metrics)
    best = max((row["test_accuracy_mean"] for row in rows), default=None)
    lines = ['<table class="accuracy">', "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS) + "</tr>"]
    for row in rows:
        cells = [html.escape(cell) for cell in _cells(row)]
        if row["test_accuracy_mean"] == best:
            cells[2] = f"<b>{cells[2]}</b>"
        lines.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return "\n".join(lines + ["</table>"])


def summary_table(metrics: dict) -> str:
    """The rows of :func:`accuracy_rows` as aligned plain text for the terminal."""
    table = [list(HEADERS)] + [_cells(row) for row in accuracy_rows(metrics)]
    widths = [max(len(line[k]) for line in table) for k in range(len(HEADERS))]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(wd) if k == 0 else c.rjust(wd) for k, (c, wd) in enumerate(zip(cells, widths)))

    return "\n".join([line(table[0]), "-+-".join("-" * wd for wd in widths)] + [line(c) for c in table[1:]])


def markdown_table(metrics: dict) -> str:
    """The rows of :func:`accuracy_rows` as a Markdown table (for a README)."""
    rows = [_cells(row) for row in accuracy_rows(metrics)]
    return "\n".join(["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)] + ["| " + " | ".join(r) + " |" for r in rows])


STYLE = """body { font-family: sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }"""


def _influence_table(influence: dict) -> str:
    lines = ['<table class="influence">', "<tr><th>method</th><th>mean I_aug</th></tr>"]
    for name, value in influence.items():
        lines.append(f"<tr><td>{html.escape(str(name))}</td><td>{float(value):.4g}</td></tr>")
    return "\n".join(lines + ["</table>"])


def check_rows(check: dict) -> list[dict]:
    """Rows of a last-layer check (``infaug.diagnose``): per source and share, the predicted and the
    actual change of the validation loss, averaged over seeds."""
    rows = []
    for name, per_seed in check.items():
        for k, first in enumerate(per_seed[0] if per_seed else []):
            entries = [seed[k] for seed in per_seed]
            rows.append({
                "source": name, "share": first["share"], "seeds": len(entries),
                "predicted": sum(e["predicted"] for e in entries) / len(entries),
                "actual": sum(e["actual"] for e in entries) / len(entries),
            })
    return rows


def _check_table(check: dict) -> str:
    lines = ['<table class="influence">',
             "<tr><th>augmentations of</th><th>share replaced</th><th>predicted change of the val loss</th>"
             "<th>actual change (last layer retrained)</th></tr>"]
    for row in check_rows(check):
        lines.append(f"<tr><td>{html.escape(str(row['source']))}</td><td>{row['share']:.0%}</td>"
                     f"<td>{row['predicted']:+.4f}</td><td>{row['actual']:+.4f}</td></tr>")
    return "\n".join(lines + ["</table>"])


def write_report(out_dir: str | Path, metrics: dict, pictures: list[tuple[str, str]], *, title: str = "infaug run") -> Path:
    """Writes ``out_dir/report.html``: the accuracy table, the influence table, the pictures, the config.

    Args:
        out_dir: the run's output folder; the page is written there.
        metrics: as for :func:`accuracy_rows`, plus optional ``"influence"`` (method -> mean I_aug on
            held-out labelled samples) and ``"config"`` (anything JSON can print).
        pictures: (caption, path relative to ``out_dir``) pairs; images are linked, not embedded.
        title: the page's title and heading.

    Returns:
        The path of the page.
    """
    out_dir = Path(out_dir)
    body = [f"<h1>{html.escape(title)}</h1>", "<h2>Test accuracy</h2>", accuracy_table(metrics)]
    if metrics.get("influence"):
        body += ["<h2>mean I_aug on held-out labelled samples (lower = predicted better)</h2>",
                 _influence_table(metrics["influence"])]
    if metrics.get("last_layer_check"):
        body += ["<h2>Is the prediction borne out? F's last layer retrained with a share of the training "
                 "samples replaced by their augmentations (mean over seeds)</h2>", _check_table(metrics["last_layer_check"])]
    for caption, relative in pictures:
        source = Path(relative)
        if source.is_absolute() and source.is_relative_to(out_dir.resolve()):
            source = source.relative_to(out_dir.resolve())
        body += [f"<h2>{html.escape(caption)}</h2>",
                 f'<img src="{html.escape(source.as_posix())}" alt="{html.escape(caption)}">']
    if "config" in metrics:
        config = json.dumps(metrics["config"], indent=2, sort_keys=True, default=str)
        body.append(f"<details><summary>config</summary><pre>{html.escape(config)}</pre></details>")
    page = "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>", f"<style>\n{STYLE}\n</style>", "</head>", "<body>",
        *body, "</body>", "</html>", "",
    ])
    return atomic_write(out_dir / "report.html", lambda temporary: temporary.write_text(page, encoding="utf-8"))


def save_curves(curves: dict[str, list[float]], path: str | Path, *, title: str = "", xlabel: str = "step") -> Path:
    """Line plot of named series (e.g. training losses), one line each."""
    figure = Figure(figsize=(6, 3.5), dpi=100)
    ax = figure.add_subplot()
    for name, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name, linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    figure.tight_layout()
    return save_figure(figure, path)
