"""Gathers results/mnist/SETTING/seedS/metrics.json into results/mnist.json: for each setting the
metrics of every seed, and per method the mean and standard deviation of the test accuracy.

A variant setting (VARIANTS) reruns only the methods that a changed key affects; the other methods
of each seed are taken from the base setting's same seed, after checking that the two
configurations agree on every key but those the variant may change (so that, the runs being
deterministic for a given number of threads, the base's figures are what the variant's preset gives
for them)."""

import json
import statistics
from pathlib import Path

# variant folder -> (base folder, the keys the variant changes: they affect only the methods it reruns[,
# the methods a changed key affects that the variant has not rerun yet: left out, not taken from the base])
VARIANTS = {"1pct-v2": ("1pct", {"kornia.trivialaugment_scale"}), "1pct-v3": ("1pct-v2", {"kornia.randaugment_m"}),
            "10pct-v2": ("10pct", {"encoder.shrink", "encoder.shrink_judge"}),  # several factors then meant the last layer's judge
            "10pct-v4": ("10pct-e60", {"heuristic.strength", "encoder.shrink_judge"}, {"proposed"}),
            "10pct-v5": ("10pct-v4", set()), "10pct-v6": ("10pct-v5", {"encoder.noise"}),
            "10pct-v7": ("10pct-v6", {"encoder.judge_horizon"}),
            "1pct-v4": ("1pct-e200", {"encoder.noise"}),  # a base may itself be a variant; 1pct-v4: one seed, rejected
            "10pct-v3": ("10pct-v2", {"heuristic.strength"}),
            "1pct-v5": ("1pct-e200", {"encoder.shrink", "encoder.shrink_judge"}),
            # 10% at F's width 64, every method on the same seeds, run in two folders side by side
            # (one process each): proposed, none and heuristic here, the other three in the base
            "10pct-w64": ("10pct-w64b", set()),
            # the control for the round judge's selection at 1% (width 32): the heuristic and random_g
            # with each round chosen among four draws by the validation loss; the rest from 1pct-v5
            "1pct-ctrl": ("1pct-v5", {"loop.round_candidates"}),
            # 1% at F's width 64: seeds 0, 1, 5 and 6 ran every method in 1pct-w64; the later seeds ran in
            # three folders of about half an hour each, so that a session's end loses at most one of them:
            # none, heuristic and random_g in 1pct-w64, proposed in 1pct-w64b, the kornia two in 1pct-w64c
            "1pct-w64": ("1pct-w64b", set()), "1pct-w64b": ("1pct-w64c", set())}
MAY_DIFFER = {"run.methods", "data.data_dir"}


def finished_seeds(folder: Path) -> dict:
    seeds = {}
    for path in sorted(folder.glob("seed*/metrics.json")):
        metrics = json.loads(path.read_text())
        wanted = len(metrics["config"]["run"]["seeds"])
        if any(len(m["test_accuracy"]) != wanted for m in metrics["methods"].values()):
            continue  # an unfinished seed is not reported
        seeds[path.parent.name] = metrics
    return seeds


def merged(variant: dict, base: dict, changed: set, left_out: set = frozenset()) -> dict:
    """The variant's seed with the methods it did not run taken from the base's seed, but for
    ``left_out`` (methods a changed key affects that the variant has not rerun yet). A key that one
    configuration lacks (added to infaug after that run) counts as its default value."""
    from infaug.config import METHODS, differing_keys

    differ = differing_keys(variant["config"], base["config"]) - changed - MAY_DIFFER - {"preset"}
    if differ:
        raise SystemExit(f"gather: a variant's configuration differs from its base's in {sorted(differ)}")
    out = dict(variant)
    if "proposed" not in variant["methods"] and "proposed" not in left_out:  # proposed's diagnostics come with proposed's run
        out.update({k: base[k] for k in ("influence", "holdout_i_aug", "last_layer_check") if k in base})
    methods = {**{k: v for k, v in base["methods"].items() if k not in left_out}, **variant["methods"]}
    out["methods"] = {k: methods[k] for k in sorted(methods, key=METHODS.index)}  # the table's order
    out["rounds"] = {**base["rounds"], **variant["rounds"]}
    out["methods_from_base"] = sorted(set(base["methods"]) - set(variant["methods"]) - set(left_out))
    return out


def resolved(root: Path, name: str) -> dict:
    """The finished seeds of a setting, a variant's merged with its base's (see ``as_base``)."""
    seeds = finished_seeds(root / name)
    if name in VARIANTS:
        base_name, changed, *left_out = VARIANTS[name]
        base = as_base(root, base_name)
        # a seed the base lacks stands as the variant ran it (the table keeps it only if it holds every method)
        seeds = {seed: merged(m, base[seed][0], changed | base[seed][1], set(*left_out) | base[seed][2]) if seed in base else m
                 for seed, m in seeds.items()}
    return seeds


def as_base(root: Path, name: str) -> dict:
    """{seed: (metrics, keys allowed to differ as well, methods left out as well)}: what a variant of
    ``name`` takes its other methods from. These are name's resolved seeds and, for a seed that name
    (itself a variant) has not run but its own base has, that base's seed: without the methods name
    reruns or leaves out (they would be of another configuration), and with name's changed keys
    allowed to differ. So a seed added later need not be rerun in every variant of the chain, only
    in the folders whose configuration each of its methods has."""
    out = {seed: (m, set(), set()) for seed, m in resolved(root, name).items()}
    if name in VARIANTS:
        base_name, changed, *left_out = VARIANTS[name]
        reruns = {method for m in finished_seeds(root / name).values() for method in m["methods"]} | set(*left_out)
        for seed, (m, keys, dropped) in as_base(root, base_name).items():
            out.setdefault(seed, (m, keys | changed, dropped | reruns))
    return out


def gather(root: Path) -> dict:
    """{setting: {"summary", "diagnostics", "metrics"}} of every setting folder under ``root``:
    what results/mnist.json holds."""
    out = {}
    for setting in sorted(p for p in root.iterdir() if p.is_dir()):
        seeds = resolved(root, setting.name)
        if not seeds:
            continue
        # The table is over the seeds that ran every method (a base may hold seeds of some methods
        # only, run for a variant that adds the others), so that each comparison is on the same seeds.
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
        out[setting.name] = {"summary": summary, "diagnostics": diagnostics, "metrics": seeds}
    return out


def main() -> None:
    root = Path(__file__).resolve().parent
    out = gather(root)
    (root.parent / "mnist.json").write_text(json.dumps(out, indent=1))
    for name, setting in out.items():
        print(name)
        for method, s in setting["summary"].items():
            t = f", paired t {s['proposed_minus_this_t']:.2f}" if s.get("proposed_minus_this_t") is not None else ""
            wins = f"; proposed better on {s['proposed_wins']} of {s['seeds']} seeds ({s['proposed_minus_this_mean']:+.2f}{t})" if "proposed_wins" in s else ""
            print(f"  {method:>14}: {s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f} ({s['seeds']} seeds, {s['seconds_mean']:.0f} s a run){wins}")
        for source, d in setting["diagnostics"].items():
            print(f"  {source:>14} augmentations: held-out I_aug {d['holdout_i_aug_mean']:+.4f}; last layer retrained on all of them: "
                  f"predicted {d['last_layer_predicted_mean']:+.4f}, measured {d['last_layer_actual_mean']:+.4f} (val loss, {d['seeds']} seeds)")
    # The paper's numbers (SPEC 4) beside ours, as the README's table.
    paper = {"1pct": {"none": "90.2", "heuristic": "95.9", "proposed": "96.7"}, "10pct": {"none": "97.3", "heuristic": "99.0", "proposed": "99.3"}}
    for name, setting in out.items():
        print(f"\n{name}:\n| method | seeds | test acc % (mean ± sd) | paper | proposed minus this (seeds proposed wins) | seconds a run |\n"
              "|---|---|---|---|---|---|")
        for method, s in setting["summary"].items():
            versus = f"{s['proposed_minus_this_mean']:+.2f} ({s['proposed_wins']} of {s['seeds']})" if "proposed_wins" in s else ""
            print(f"| {method} | {s['seeds']} | {s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f} | "
                  f"{paper.get(name.split('-')[0], {}).get(method, '-')} | {versus} | {s['seconds_mean']:.0f} |")


if __name__ == "__main__":
    main()
