"""The ``infaug`` command line.

    infaug run [--preset NAME] [--config FILE.toml] [--out DIR] [--resume] [--seeds 0,1,2]
               [--methods none,proposed] [--device auto] [--dataset NAME] [--data-dir DIR]
               [--set key=value ...]
        Learns an augmentation by influence and compares it with five other methods on the same
        splits, seeds and budget; writes metrics.json, config.json/.toml, run.log,
        pictures, report.html and checkpoints; --resume continues a killed run.

    infaug table METRICS.json [--markdown]
        Prints the accuracy table (mean and standard deviation over seeds) of a run.

    infaug demo [--data DIR] [--out DIR] [--count N] [--seed S]
        Warps real digits with random smooth flows and colour changes through the fused
        ``infaug.augment`` kernel and writes a picture: originals above, augmentations below.

    infaug check-influence [--data DIR] [--out DIR] [--train N] [--removals N] [--replacements N]
        Checks the influence engine against real retraining: prints the correlations
        and slopes and writes a scatter plot of predicted against actual changes.

    infaug download NAME --data-dir DIR [--mirror URL ...] [--mirror-only] [--retries N]
        Fetches a dataset (mnist, fashion-mnist) into DIR/<folder>/raw (torchvision's layout),
        skipping files whose content verifies, resuming interrupted downloads and trying the mirrors in
        turn (--mirror URLs first, then INFAUG_MIRRORS, then the dataset's own); prints the folder
        to pass as --data-dir.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import infaug
from infaug.data import Digits, embedded_digits, load_mnist
from infaug.viz import save_grid


def load_digits(data: str | None) -> Digits:
    """MNIST's training split from ``data`` (root/MNIST/raw), or the embedded 5000 digits."""
    return load_mnist(data, "train") if data else embedded_digits()


def random_augmentation(n: int, height: int, width: int, generator: torch.Generator) -> tuple:
    """Random (theta_w, theta_b, color_w, color_b) for ``n`` single-channel images: a random
    rotation, scale and shift per image plus a smooth random per-pixel perturbation, and a random
    contrast and brightness change."""

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    angle, scale = uniform(-0.35, 0.35, n), uniform(0.85, 1.15, n)
    matrix = torch.stack([scale * angle.cos(), -scale * angle.sin(), scale * angle.sin(), scale * angle.cos()], 1)
    # Smooth per-pixel wobble: coarse noise upsampled to the image.
    wobble = F.interpolate(0.08 * torch.randn(n, 6, 4, 4, generator=generator), size=(height, width), mode="bicubic")
    theta_w = matrix.view(n, 4, 1, 1) + wobble[:, :4]
    theta_b = uniform(-0.12, 0.12, n, 2).view(n, 2, 1, 1) + wobble[:, 4:]
    color_w = uniform(0.7, 1.2, n).view(n, 1, 1)
    color_b = uniform(-0.1, 0.1, n).view(n, 1)
    return theta_w.contiguous(), theta_b.contiguous(), color_w, color_b


def demo(args: argparse.Namespace) -> Path:
    generator = torch.Generator().manual_seed(args.seed)
    digits = load_digits(args.data)
    source = f"MNIST at {args.data}" if args.data else "the embedded 5000 MNIST digits"
    pick = torch.randperm(len(digits), generator=generator)[: args.count]
    x = digits.images[pick]
    n, _, h, w = x.shape
    params = random_augmentation(n, h, w, generator)
    start = time.perf_counter()
    augmented = infaug.augment(x, *params, smooth=5)
    elapsed = time.perf_counter() - start
    path = save_grid(torch.cat([x, augmented.clamp(0, 1)]), Path(args.out) / "demo.png", columns=min(n, 16))
    print(f"augmented {n} digits from {source} with infaug.augment in {elapsed * 1e3:.1f} ms")
    print(f"wrote {path} (top: originals, bottom: augmented)")
    return path


def check_influence(args: argparse.Namespace) -> None:
    from infaug.ground_truth import check_influence as run_check, plot

    result = run_check(
        load_digits(args.data),
        train_size=args.train,
        removals=args.removals,
        replacements=args.replacements,
        damping=args.damping,
        seed=args.seed,
    )
    print(result.summary())
    print(f"wrote {plot(result, Path(args.out) / 'influence.png')}")


def run_command(args: argparse.Namespace) -> dict:
    from infaug.config import Config, load_config, load_preset
    from infaug.util.files import CorruptFileError, read_json
    from infaug import distributed
    from infaug.run import RunError, run

    name = args.preset or (Path(args.config).stem if args.config else "default")
    out = Path(args.out or f"runs/{name}")
    overrides = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"infaug run: --set takes key=value (e.g. classifier.epochs=30), got {item!r}")
        overrides[key.strip()] = value.strip()
    for key, value in (("run.seeds", args.seeds), ("run.methods", args.methods), ("run.device", args.device),
                       ("data.data_dir", args.data_dir), ("data.dataset", args.dataset)):
        if value is not None:
            overrides[key] = value
    try:
        if args.resume and not (args.preset or args.config):
            saved = out / "config.json"
            if not saved.exists():
                raise SystemExit(f"infaug run --resume: {saved} not found, so {out} holds no run to continue (give --out)")
            config = Config.from_dict(read_json(saved, "run's config.json"), source=str(saved))
        else:
            config = load_preset(args.preset or "default")
            if args.config:
                config = load_config(args.config, base=config if args.preset else Config())
                config = config if config.preset else config.replace({"preset": Path(args.config).name})
        config = config.replace(overrides, source="command line")
    except (KeyError, TypeError, ValueError) as error:
        raise SystemExit(f"infaug run: {error.args[0] if error.args else error}") from None
    try:
        metrics = run(config, out, resume=args.resume)
    except (RunError, CorruptFileError, FileNotFoundError, ValueError) as error:
        # bad input (data, configuration, folder): one line that says what to do; INFAUG_DEBUG=1 shows the traceback
        if os.environ.get("INFAUG_DEBUG") == "1":
            raise
        raise SystemExit(f"infaug run: {error}") from None
    # under torchrun: leave the process group (after a failure the process just exits, and torchrun
    # stops the others, rather than waiting at cleanup's barrier for ranks that will not come)
    distributed.cleanup()
    return metrics


def _check_metrics(metrics, path: Path) -> None:
    """Raises CorruptFileError unless ``metrics`` has the shape ``infaug run`` writes."""
    from infaug.util.files import CorruptFileError

    def bad(what: str) -> CorruptFileError:
        return CorruptFileError(f"{path}: not a metrics.json written by infaug run ({what})")

    if not isinstance(metrics, dict):
        raise bad(f"a JSON {type(metrics).__name__}, not an object")
    parts = metrics.get("variants") or {"": metrics}
    for name, part in parts.items():
        where = f"variants.{name}." if name else ""
        methods = part.get("methods") if isinstance(part, dict) else None
        if not isinstance(methods, dict) or not methods:
            raise bad(f"no {where}methods")
        for method, entry in methods.items():
            values = entry.get("test_accuracy") if isinstance(entry, dict) else None
            if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise bad(f"{where}methods.{method}.test_accuracy is not a list of numbers")


def table_command(args: argparse.Namespace) -> None:
    from infaug.report import markdown_table, summary_table
    from infaug.util.files import CorruptFileError, read_json

    path = Path(args.metrics)
    try:
        metrics = read_json(path, "metrics.json")
        _check_metrics(metrics, path)
        lines = []
        for name, part in (metrics.get("variants") or {"": metrics}).items():
            if name:
                lines.append(f"{name}:")
            lines.append(markdown_table(part) if args.markdown else summary_table(part))
    except (CorruptFileError, FileNotFoundError) as error:
        raise SystemExit(f"infaug table: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:  # a shape _check_metrics let through
        raise SystemExit(f"infaug table: {path}: not a metrics.json written by infaug run ({type(error).__name__}: {error})") from None
    print("\n".join(lines))


def download_command(args: argparse.Namespace) -> Path:
    from infaug.data.download import DownloadError, download

    try:
        return download(args.name, args.data_dir, mirrors=args.mirror, official=not args.mirror_only, retries=args.retries)
    except DownloadError as error:
        raise SystemExit(f"infaug download: {error}") from None


def parser() -> argparse.ArgumentParser:
    from infaug.config import preset_names

    main = argparse.ArgumentParser(prog="infaug", description="Learned data augmentation judged by influence functions.")
    main.add_argument("--version", action="version", version=f"infaug {infaug.__version__} (torch {torch.__version__})")
    commands = main.add_subparsers(dest="command", required=True)
    r = commands.add_parser("run", help="learn an augmentation by influence and compare it with the baselines")
    r.add_argument("--preset", default=None, choices=preset_names(), help="a shipped configuration to start from (default: default)")
    r.add_argument("--config", default=None, metavar="FILE.toml", help="a TOML configuration, over the defaults (or over --preset)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoints")
    r.add_argument("--out", default=None, help="output directory (default: runs/PRESET)")
    r.add_argument("--seeds", default=None, help="comma-separated seeds (default: the preset's, 0)")
    r.add_argument("--methods", default=None, help="comma-separated methods (default: all six)")
    r.add_argument("--device", default=None, help="auto (default), cpu or cuda[:N]")
    r.add_argument("--dataset", default=None, help="embedded, mnist, fashion-mnist, folder, or NAME for DATA_DIR/NAME/raw (IDX files)")
    r.add_argument("--data-dir", default=None, help="the data root (holding MNIST/raw, NAME/raw) or, for --dataset folder, the image folder")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a configuration key, e.g. classifier.epochs=30")
    r.set_defaults(run=run_command)
    t = commands.add_parser("table", help="print the accuracy table of a run's metrics.json")
    t.add_argument("metrics", help="a metrics.json written by infaug run")
    t.add_argument("--markdown", action="store_true", help="as a Markdown table")
    t.set_defaults(run=table_command)
    d = commands.add_parser("demo", help="warp real digits with random smooth flows and write a picture")
    d.add_argument("--data", default=None, help="MNIST root (root/MNIST/raw/*-ubyte.gz); default: embedded digits")
    d.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    d.add_argument("--count", type=int, default=32, help="number of digits (default: 32)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(run=demo)
    c = commands.add_parser("check-influence", help="compare predicted influence with actual retraining")
    c.add_argument("--data", default=None, help="MNIST root (root/MNIST/raw/*-ubyte.gz); default: embedded digits")
    c.add_argument("--out", default="runs/check-influence", help="output directory (default: runs/check-influence)")
    c.add_argument("--train", type=int, default=2000, help="training samples (default: 2000)")
    c.add_argument("--removals", type=int, default=40)
    c.add_argument("--replacements", type=int, default=40)
    c.add_argument("--damping", type=float, default=0.01)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(run=check_influence)
    from infaug.data.sources import SOURCES

    g = commands.add_parser("download", help="fetch a dataset (mnist, fashion-mnist) into DIR/<folder>/raw")
    g.add_argument("name", type=str.lower, choices=sorted(SOURCES), help="the dataset")
    g.add_argument("--data-dir", required=True, help="the root: files land in DIR/MNIST/raw, DIR/FashionMNIST/raw")
    g.add_argument("--mirror", action="append", metavar="URL", help="a base URL tried before the dataset's own mirrors (repeatable)")
    g.add_argument("--mirror-only", action="store_true", help="try only --mirror URLs (and INFAUG_MIRRORS), not the dataset's own")
    g.add_argument("--retries", type=int, default=3, help="further attempts per mirror after a failed connection (default: 3)")
    g.set_defaults(run=download_command)
    return main


def main(argv: list[str] | None = None) -> None:
    argv = list(argv) if argv is not None else __import__("sys").argv[1:]
    if not argv:
        argv = ["run"]  # `infaug` alone runs the default preset
    args = parser().parse_args(argv)
    args.run(args)  # returns None: the console script exits with status 0


if __name__ == "__main__":
    main()
