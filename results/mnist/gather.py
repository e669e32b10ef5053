"""Gathers the runs of each reported MNIST table into results/mnist.json: for each table (TABLES)
the metrics of every seed, per method the mean and standard deviation of the test accuracy over the
seeds that ran every method, and proposed's influence diagnostics.

    python results/mnist/gather.py      # writes results/mnist.json and prints every table

A table is a folder results/mnist/TABLE/ with one folder per seed. A seed's runs are either one run
of every method, the files of ``infaug run --out TABLE/seedS`` directly in seedS/, or several
partial runs ("parts"), each the unmodified output of one ``infaug run --methods ...`` in
seedS/part-M1-M2.../ (its log beside it, part-M1-M2....log), the folder's name listing the methods
taken from it: those its run was given (``--methods M1,M2,...``, as rerun.sh names it), or fewer
where the part is a run of more methods than the table takes from it (the control's
part-none-trivialaugment-randaugment, a run of every method, below). Each method of the seed comes
from exactly one part; a seed's whole run may also have parts beside it, for methods it did not
run (the part named "." in ``parts`` is the whole run). The parts of one seed are merged
after checking that they ran the same seed on the same splits and that their configurations agree
on every key but MAY_DIFFER (``infaug.config.differing_keys``: a key one configuration lacks counts
as its default, a retired key at today's behaviour as absent), or, in a table that varies keys on
purpose (DIFFER), that the methods each such key is varied for were all run at one value of it.
The runs are deterministic on one CPU for a given number of threads, so a part's figures are those
one whole run of that configuration gives for its methods.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

# table -> (current: a table of the committed presets, the README's headline tables; what it is)
TABLES = {
    "1pct": (True, "1% of the labels, the committed preset mnist-1pct (F at width 64, 200 epochs), seeds 0 to 8; "
                   "elastic ran later (issue 42) on another machine of the same kind, so its seconds compare with "
                   "the others' only roughly"),
    "10pct": (True, "10% of the labels, the committed preset mnist-10pct (F at width 64, 60 epochs), seeds 0 to 4"),
    "1pct-semi": (True, "1% of the labels, semi-supervised: the committed preset mnist-1pct-semi (mnist-1pct with FixMatch "
                        "on the unlabelled digits for every method, E against the pseudo-labelled target)"),
    "10pct-semi": (True, "10% of the labels, semi-supervised: the committed preset mnist-10pct-semi (mnist-10pct with "
                         "FixMatch on the unlabelled digits for every method, E against the pseudo-labelled target)"),
    "1pct-control": (False, "the control for the round judge's selection at 1%: the width-32 preset before the "
                            "capacity trial, the heuristic and random_g with each round chosen among four draws by the "
                            "validation loss (loop.round_candidates = 4, retired: docs/experiments.md), the other four "
                            "methods as that preset ran them"),
}
MAY_DIFFER = {"run.methods", "data.data_dir"}
# table -> {key: the methods it is varied for}: keys on which the parts of a table's seed differ on
# purpose; the parts that those methods come from must agree on the key. 1pct-control: the control's
# heuristic and random_g ran with loop.round_candidates = 4 (part-random_g-heuristic), proposed with
# its step judged by a round of F's training, encoder.shrink = [0, 0.25, 0.5, 1] (part-proposed); the
# other methods (part-none-trivialaugment-randaugment, the width-32 preset's run before that judge,
# encoder.shrink = [1.0]) do not read encoder.shrink.
# 1pct and 10pct: the elastic method came later (issue 42), in a part of its own beside each seed's
# runs (seedS/part-elastic, or beside a whole run in seedS/), with its tuned elastic.strength, a key
# no other method reads.
DIFFER = {"1pct-control": {"loop.round_candidates": {"heuristic", "random_g"}, "encoder.shrink": {"proposed"}},
          "1pct": {"elastic.strength": {"elastic"}}, "10pct": {"elastic.strength": {"elastic"}}}
PROPOSED_ONLY = ("influence", "holdout_i_aug", "last_layer_check")  # diagnostics written by proposed's run


def finished_methods(metrics: dict) -> set[str]:
    """The methods of a run's metrics.json that finished every seed it was given (infaug run writes
    the file after each method, every method of the run listed from the start)."""
    wanted = len(metrics["config"]["run"]["seeds"])
    return {m for m, r in metrics["methods"].items() if len(r["test_accuracy"]) == wanted}


def part_methods(part: Path) -> list[str]:
    """The methods a part's folder name says are taken from it (part-none-heuristic-random_g)."""
    from infaug.config import METHODS

    methods = part.name.removeprefix("part-").split("-")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not part.name.startswith("part-"):
        raise SystemExit(f"gather: {part} is not named part-METHOD-METHOD... (unknown {unknown})")
    return methods


def seed_metrics(folder: Path, table: str = "") -> dict | None:
    """The seed's metrics: the run in ``folder`` as it is, or its parts merged (``merged``); the
    methods of an unfinished run or part left out. None if nothing in it has finished."""
    parts = sorted(p for p in folder.glob("part-*") if p.is_dir() and "." not in p.name)  # not rerun.sh's part-*.claim
    whole = {}
    if (folder / "metrics.json").exists():
        metrics = json.loads((folder / "metrics.json").read_text())
        if finished_methods(metrics) != set(metrics["methods"]):
            return None  # an unfinished whole run is not reported
        if not parts:
            return metrics
        whole = {".": (list(metrics["methods"]), metrics)}  # a method added later, in a part beside the whole run
    if not parts:
        return None
    return merged({**whole, **{p.name: (part_methods(p), json.loads((p / "metrics.json").read_text()))
                               for p in parts if (p / "metrics.json").exists()}}, DIFFER.get(table, {}), str(folder))


def merged(parts: dict, differ: dict | None = None, where: str = "") -> dict | None:
    """One seed's metrics from its parts {name: (methods taken, metrics)}: every method (and its
    rounds) from the part that names it, in the table's order; the other fields (config, splits,
    device, ...) and proposed's diagnostics from the part that ran proposed (else the first),
    ``parts`` saying which methods came from which. A part whose methods have not all finished is
    left out. The parts must agree as the module's docstring says, or SystemExit."""
    from infaug.config import METHODS, differing_keys

    differ = differ or {}
    taken, named = {}, set()
    for name, (methods, metrics) in parts.items():
        missing = set(methods) - set(metrics["methods"])
        if missing:
            raise SystemExit(f"gather: {where}/{name} names {sorted(missing)}, which its run did not run")
        twice = set(methods) & named
        if twice:
            raise SystemExit(f"gather: {where}: {sorted(twice)} taken from two parts")
        named |= set(methods)
        if set(methods) <= finished_methods(metrics):
            taken.update({m: name for m in methods})
    if not taken:
        return None
    used = {name: parts[name] for name in dict.fromkeys(taken.values())}
    first_name, (_, first) = next(iter(used.items()))
    for name, (methods, metrics) in used.items():
        if metrics["config"]["run"]["seeds"] != first["config"]["run"]["seeds"] or metrics["splits"] != first["splits"]:
            raise SystemExit(f"gather: {where}: {name} and {first_name} ran other seeds or splits")
        differ_keys = differing_keys(metrics["config"], first["config"]) - MAY_DIFFER - set(differ)
        if differ_keys:
            raise SystemExit(f"gather: {where}: the configuration of {name} differs from {first_name}'s in {sorted(differ_keys)}")
    for key, varied in differ.items():  # the methods a key is varied for were run at one value of it
        holders = [name for name, (methods, _) in used.items() if varied & set(methods)]
        for name in holders[1:]:
            if key in differing_keys(used[name][1]["config"], used[holders[0]][1]["config"]):
                raise SystemExit(f"gather: {where}: {sorted(varied)} come from parts with different {key} ({holders[0]}, {name})")
    base_name = taken.get("proposed", first_name)
    base = used[base_name][1]
    out = {k: v for k, v in base.items() if k not in ("methods", "rounds")}
    if "proposed" not in taken:
        for k in (*PROPOSED_ONLY, "proposed_over_heuristic_seconds"):
            out.pop(k, None)
    if not {"proposed", "heuristic"} <= {m for m, name in taken.items() if name == base_name}:
        out.pop("proposed_over_heuristic_seconds", None)  # a ratio of two methods of one run
    order = sorted(taken, key=METHODS.index)  # the table's order
    out["methods"] = {m: used[taken[m]][1]["methods"][m] for m in order}
    out["rounds"] = {m: used[taken[m]][1]["rounds"][m] for m in order if m in used[taken[m]][1]["rounds"]}
    out["parts"] = {name: [m for m in order if taken[m] == name] for name in dict.fromkeys(taken[m] for m in order)}
    return out


def table_preset(table: str) -> str:
    """The preset a table's runs ran (as run.sh picks it): mnist-TABLE where infaug has such a
    preset (1pct-semi), else mnist-TABLE up to the first "-" (1pct-control: mnist-1pct)."""
    from infaug.config import preset_names

    return f"mnist-{table}" if f"mnist-{table}" in preset_names() else f"mnist-{table.split('-')[0]}"


def table_seeds(folder: Path) -> dict:
    """{seedS: the seed's metrics} of a table folder, in the order of the seeds."""
    seeds = {}
    for seed in sorted((p for p in folder.glob("seed*") if p.is_dir() and re.fullmatch(r"seed\d+", p.name)),
                       key=lambda p: int(p.name.removeprefix("seed"))):
        metrics = seed_metrics(seed, folder.name)
        if metrics is not None:
            seeds[seed.name] = metrics
    return seeds


def gather(root: Path, tables: dict | None = None) -> dict:
    """{table: {"current", "about", "summary", "diagnostics", "metrics"}} of the tables (TABLES)
    under ``root``: what results/mnist.json holds. A folder under ``root`` that holds runs of seeds
    but is not a table is refused, so that no run lies in the tree unreported."""
    tables = TABLES if tables is None else tables
    stray = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in tables
                   and (any(p.glob("seed*/metrics.json")) or any(p.glob("seed*/part-*/metrics.json"))))
    if stray:
        raise SystemExit(f"gather: {stray} under {root} hold runs but are not tables (TABLES)")
    out = {}
    for name, (current, about) in tables.items():
        seeds = table_seeds(root / name) if (root / name).is_dir() else {}
        if not seeds:
            continue
        # The table is over the seeds that ran every method, so that each comparison is on the same seeds.
        methods = max((list(m["methods"]) for m in seeds.values()), key=len)
        complete = [m for m in seeds.values() if set(m["methods"]) == set(methods)]
        summary = {}
        for method in methods:
            accuracy = [100 * a for m in complete for a in m["methods"][method]["test_accuracy"]]
            seconds = [s for m in complete for s in m["methods"][method]["seconds"]]
            summary[method] = {"seeds": len(accuracy), "test_accuracy_mean": statistics.mean(accuracy),
                               "test_accuracy_sd": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
                               "test_accuracy": accuracy, "seconds_mean": statistics.mean(seconds)}
        if "proposed" in summary:  # the test: proposed against each other method on the same seeds
            mine = summary["proposed"]["test_accuracy"]
            for method, s in summary.items():
                if method != "proposed":
                    s["proposed_wins"] = sum(p > o for p, o in zip(mine, s["test_accuracy"]))
                    d = [p - o for p, o in zip(mine, s["test_accuracy"])]
                    mean, sd = statistics.mean(d), statistics.stdev(d) if len(d) > 1 else 0.0
                    s["proposed_minus_this_mean"] = mean
                    # the paired t statistic of the differences (on len(d) - 1 degrees of freedom)
                    s["proposed_minus_this_t"] = mean / (sd / len(d) ** 0.5) if sd > 0 else None
        # The influence diagnostics of proposed's last round, mean over the seeds: I_aug on the held-out
        # labelled samples, and the last-layer check (predicted and measured change of the validation
        # loss when every training sample is replaced by its augmentation and F's last layer retrained).
        diagnostics = {}
        for source in ("proposed", "random_g", "heuristic"):
            holdout = [m["holdout_i_aug"][source][0] for m in complete if m.get("holdout_i_aug")]
            full = [r for m in complete if m.get("last_layer_check") for r in m["last_layer_check"][source][0] if r["share"] == 1.0]
            if holdout and full:
                diagnostics[source] = {"seeds": len(full), "holdout_i_aug_mean": statistics.mean(holdout),
                                       "last_layer_predicted_mean": statistics.mean(r["predicted"] for r in full),
                                       "last_layer_actual_mean": statistics.mean(r["actual"] for r in full),
                                       "last_layer_actual": [r["actual"] for r in full]}
        out[name] = {"current": current, "about": about, "summary": summary, "diagnostics": diagnostics, "metrics": seeds}
    return out


def main() -> None:
    root = Path(__file__).resolve().parent
    out = gather(root)
    (root.parent / "mnist.json").write_text(json.dumps(out, indent=1))
    for name, table in out.items():
        print(f"{name}{' (current)' if table['current'] else ''}: {table['about']}")
        for method, s in table["summary"].items():
            t = f", paired t {s['proposed_minus_this_t']:.2f}" if s.get("proposed_minus_this_t") is not None else ""
            wins = f"; proposed better on {s['proposed_wins']} of {s['seeds']} seeds ({s['proposed_minus_this_mean']:+.2f}{t})" if "proposed_wins" in s else ""
            print(f"  {method:>14}: {s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f} ({s['seeds']} seeds, {s['seconds_mean']:.0f} s a run){wins}")
        for source, d in table["diagnostics"].items():
            print(f"  {source:>14} augmentations: held-out I_aug {d['holdout_i_aug_mean']:+.4f}; last layer retrained on all of them: "
                  f"predicted {d['last_layer_predicted_mean']:+.4f}, measured {d['last_layer_actual_mean']:+.4f} (val loss, {d['seeds']} seeds)")
    # The paper's numbers beside ours, as the README's table (the paper has no semi-supervised setting).
    paper = {"1pct": {"none": "90.2", "heuristic": "95.9", "proposed": "96.7"}, "10pct": {"none": "97.3", "heuristic": "99.0", "proposed": "99.3"}}
    for name, table in out.items():
        print(f"\n{name}:\n| method | seeds | test acc % (mean ± sd) | paper | proposed minus this (seeds proposed wins; paired t) | seconds a run |\n"
              "|---|---|---|---|---|---|")
        for method, s in table["summary"].items():
            t = f"; {s['proposed_minus_this_t']:.2f}" if s.get("proposed_minus_this_t") is not None else ""
            versus = f"{s['proposed_minus_this_mean']:+.2f} ({s['proposed_wins']} of {s['seeds']}{t})" if "proposed_wins" in s else ""
            print(f"| {method} | {s['seeds']} | {s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f} | "
                  f"{paper.get(name if name.endswith('-semi') else name.split('-')[0], {}).get(method, '-')} | {versus} | {s['seconds_mean']:.0f} |")


if __name__ == "__main__":
    main()
