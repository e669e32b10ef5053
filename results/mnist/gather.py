"""Gathers results/mnist/SETTING/seedS/metrics.json into results/mnist.json: for each setting the
metrics of every seed, and per method the mean and standard deviation of the test accuracy."""

import json
import statistics
from pathlib import Path

root = Path(__file__).resolve().parent
out = {}
for setting in sorted(p for p in root.iterdir() if p.is_dir()):
    seeds = {}
    for path in sorted(setting.glob("seed*/metrics.json")):
        metrics = json.loads(path.read_text())
        wanted = len(metrics["config"]["run"]["seeds"])
        if any(len(m["test_accuracy"]) != wanted for m in metrics["methods"].values()):
            continue  # an unfinished seed is not reported
        seeds[path.parent.name] = metrics
    if not seeds:
        continue
    methods = list(next(iter(seeds.values()))["methods"])
    summary = {}
    for method in methods:
        accuracy = [100 * a for m in seeds.values() for a in m["methods"][method]["test_accuracy"]]
        seconds = [s for m in seeds.values() for s in m["methods"][method]["seconds"]]
        summary[method] = {"seeds": len(accuracy), "test_accuracy_mean": statistics.mean(accuracy),
                           "test_accuracy_sd": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
                           "test_accuracy": accuracy, "seconds_mean": statistics.mean(seconds)}
    if "proposed" in summary:  # the test: proposed against each other method on the same seeds
        mine = summary["proposed"]["test_accuracy"]
        for method, s in summary.items():
            if method != "proposed":
                s["proposed_wins"] = sum(p > o for p, o in zip(mine, s["test_accuracy"]))
                s["proposed_minus_this_mean"] = statistics.mean(p - o for p, o in zip(mine, s["test_accuracy"]))
    out[setting.name] = {"summary": summary, "metrics": seeds}
(root.parent / "mnist.json").write_text(json.dumps(out, indent=1))
for name, setting in out.items():
    print(name)
    for method, s in setting["summary"].items():
        wins = f"; proposed better on {s['proposed_wins']} of {s['seeds']} seeds ({s['proposed_minus_this_mean']:+.2f})" if "proposed_wins" in s else ""
        print(f"  {method:>14}: {s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f} ({s['seeds']} seeds, {s['seconds_mean']:.0f} s a run){wins}")

# The paper's numbers (SPEC 4) beside ours, as the README's table.
PAPER = {"1pct": {"none": "90.2", "heuristic": "95.9", "proposed": "96.7"}, "10pct": {"none": "97.3", "heuristic": "99.0", "proposed": "99.3"}}
for name, setting in out.items():
    print(f"\n{name}:\n| method | seeds | test acc % (mean ± sd) | paper | proposed minus this (seeds proposed wins) | seconds a run |\n"
          "|---|---|---|---|---|---|")
    for method, s in setting["summary"].items():
        versus = f"{s['proposed_minus_this_mean']:+.2f} ({s['proposed_wins']} of {s['seeds']})" if "proposed_wins" in s else ""
        print(f"| {method} | {s['seeds']} | {s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f} | "
              f"{PAPER.get(name, {}).get(method, '-')} | {versus} | {s['seconds_mean']:.0f} |")
