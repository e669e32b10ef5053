"""Tuning on the validation split (issue 11): every method gets the same number of trials, judged by
the mean validation loss over the tuning seeds; the test set is never evaluated here.

Each trial is one method run by the same code as ``infaug run`` (``infaug.train.loop.run_method``)
with a few config overrides, on tuning seeds that are not the reported ones (their labelled subsets
differ). The task's test split is replaced by its validation split before anything runs, so no
trial can touch the test images. G is pre-trained once per seed (no trial changes G's config) and
cached with every trial in ``OUT/checkpoints``, so a killed tuning run continues where it stopped.

    python results/mnist/tune.py --setting 1pct --seeds 100 101     # writes results/mnist/tuning/1pct/
    python results/mnist/tune.py --setting 1pct --seeds 100 --select  # only print the choice
    python results/mnist/tune.py --setting 1pct --seeds 100 --budget  # the preset with BUDGET, every method
    python results/mnist/tune.py --setting 1pct --seeds 100 --after   # the trials of AFTER on the committed preset
    python results/mnist/tune.py --setting 10pct --seeds 100 --capacity  # the committed preset with CAPACITY's F
    python results/mnist/tune.py --setting 1pct --seeds 100 --capacity   # likewise at 1%
    python results/mnist/tune.py --setting 10pct --seeds 100 --longer    # LONGER: the heuristic at 120 epochs
    python results/mnist/tune.py --setting 1pct --seeds 100 --elastic    # ELASTIC: the elastic method's trials

Writes ``trials.jsonl`` (one line per finished trial: seed, method, overrides, validation loss and
accuracy, seconds) and ``choice.json`` (per method, the trial with the lowest mean validation loss
over the seeds every trial of that method finished on); with ``--budget`` also ``budget.jsonl``
and ``budget.json`` (each method's validation loss with the preset and with BUDGET, the verdict);
with ``--after`` also ``after.jsonl`` and ``after.json`` (AFTER's trials against the budget rows);
with ``--capacity`` also ``capacity.jsonl`` and ``capacity.json`` (every method with CAPACITY against
the committed preset, the verdict by BUDGET_RULE).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from infaug.config import load_preset
from infaug.run import pretrain, resolve_device
from infaug.train.checkpoint import Checkpoints
from infaug.train.loop import run_method
from infaug.train.task import build_task, load_pool

# encoder.shrink: E's mean scaled by one of these factors after each round. When the TRIALS below ran,
# several factors were judged by F's last layer retrained exactly (encoder.shrink_judge =
# "last_layer", retired: docs/experiments.md); today they are judged by a round of F's training.
SHRINK = [0.0, 0.25, 0.5, 1.0]
# The same number of trials for every method; the first is the shipped preset's value. At 1% the
# fourth trial of each was added in a later session, after the first three had run on seed 100,
# and the fifth in another. Proposed's fifth to seventh trials at 1% (E against the influence
# through all of F, twice, and against the validation loss after three of F's steps) set options
# that are retired: their rows stay in trials.jsonl, their record is in docs/experiments.md (the
# code runs at commit 22dfc71), and they are no longer run or counted here.
TRIALS = {
    "1pct": {
        "none": [{}, {"classifier.lr": 0.001}, {"classifier.lr": 0.004}, {"classifier.lr": 0.003}, {"classifier.lr": 0.005}],
        "heuristic": [{}, {"heuristic.strength": 1.5}, {"heuristic.strength": 2.0}, {"heuristic.strength": 1.25},
                      {"heuristic.strength": 1.75}],
        "random_g": [{}, {"generator.temperature": 0.75}, {"generator.temperature": 1.25}, {"generator.temperature": 0.5},
                     {"generator.temperature": 0.875}],
        "proposed": [{}, {"loop.rounds": 6}, {"encoder.kl": 0.1}, {"encoder.shrink": SHRINK}],
        "trivialaugment": [{}, {"kornia.trivialaugment_scale": 0.5}, {"kornia.trivialaugment_scale": 0.25},
                           {"kornia.trivialaugment_scale": 0.75}, {"kornia.trivialaugment_scale": 0.875}],
        "randaugment": [{}, {"kornia.randaugment_m": 5}, {"kornia.randaugment_n": 1, "kornia.randaugment_m": 5},
                        {"kornia.randaugment_n": 1}, {"kornia.randaugment_m": 15}],
    },
    # 10%: the 1% choices ("{}") against one alternative each: the value before tuning, or for
    # proposed the step-size check; proposed first.
    "10pct": {
        "proposed": [{}, {"encoder.shrink": SHRINK}],
        "none": [{}, {"classifier.lr": 0.004}],
        "heuristic": [{}, {"heuristic.strength": 1.0}],
        "random_g": [{}, {"generator.temperature": 1.0}],
        "trivialaugment": [{}, {"kornia.trivialaugment_scale": 1.0}],
        "randaugment": [{}, {"kornia.randaugment_m": 5}],
    },
}
# The training budget is shared by every method, so it is tried apart from the trials (--budget):
# every method with the committed preset and this budget, on the same tuning seeds. It is adopted
# if it lowers the validation loss of at least BUDGET_RULE of the six methods (the rule was fixed
# before the trial ran).
BUDGET = {"1pct": {"classifier.epochs": 200}, "10pct": {"classifier.epochs": 60}}
# Trials after the budget trial (--after, a later session), on the committed preset itself (its
# epochs and choices): each against that method's budget row (the same preset, so the same run),
# adopted if its validation loss is lower. proposed: E's step judged by a round of F's training
# per factor (what several encoder.shrink factors mean today; the overrides keep the key
# encoder.shrink_judge = "round" they ran with, which names their rows and which a configuration
# now drops as today's behaviour), the longer horizon the README's Targets-missed names; heuristic
# and random_g, the strongest baselines, each get one trial as well (a stronger augmentation for
# the longer budget), so that proposed is not the only method tuned again.
AFTER = {
    "1pct": {"proposed": [{"encoder.shrink": SHRINK, "encoder.shrink_judge": "round"}],
             "heuristic": [{"heuristic.strength": 1.75}], "random_g": [{"generator.temperature": 1.0}]},
    # 10% (a later session): the same trial for proposed; the baselines one step further in the
    # direction their 10% trials preferred (heuristic 1.5 -> 1, random_g 1 -> 0.75). "{}" last: the
    # committed preset run again beside the trials, because they ran on another CPU than the budget
    # rows (runs are deterministic only on one CPU); the verdict then takes it in place of the
    # budget row.
    # Appended in a third session on the AMD VM, after the first two were adopted (the preset now
    # has them, so the old "{}" rows are the preset before them; each new trial names the adopted
    # value it keeps): proposed with E's noise at random_g's tuned 0.75, since the round judge
    # rejected almost all of E's step and left G's prior at noise 1; the heuristic one step further
    # (0.75 -> 0.5). random_g's 0.75 is already bracketed (1 and 0.5 were worse).
    # The preset has had E's noise 0.75 since (adopted): the rows in after.jsonl, keyed by their
    # overrides, are of the preset as it was when they ran, and are not rerun.
    # Appended in a fourth session (AMD VM): proposed with the round judge's candidates judged at the
    # end of F's schedule (retired since: its row stays in after.jsonl, its record in
    # docs/experiments.md, and it is no longer run or counted here); the heuristic and random_g one
    # more trial each, between their two best, so that each baseline has had as many trials after
    # the budget as proposed has had since its round judge.
    "10pct": {"proposed": [{"encoder.shrink_judge": "round"}, {}, {"encoder.shrink_judge": "round", "encoder.noise": 0.75}],
              "heuristic": [{"heuristic.strength": 0.75}, {}, {"heuristic.strength": 0.5}, {"heuristic.strength": 0.625}],
              "random_g": [{"generator.temperature": 0.5}, {}, {"generator.temperature": 0.875}]},
}
BUDGET_RULE = 4
# A wider F, shared by every method (a later session, AMD VM, 10% only): the committed preset with
# CAPACITY against the committed preset, on the same tuning seed, one thread a run, adopted by
# BUDGET_RULE (fixed before it ran). The committed preset's row of each method is its "{}" row in
# capacity.jsonl, run beside; for proposed, the heuristic and random_g, whose committed preset already
# ran on this CPU at one thread (after.jsonl, the rows named in CAPACITY_PRESET_ROWS), that row.
# 1% was added in a later session (AMD VM), by the same rule, fixed before it ran; its after.jsonl rows
# ran on the Intel VM at two threads, so every method's preset row is run beside the wide one.
CAPACITY = {"10pct": {"classifier.width": 64}, "1pct": {"classifier.width": 64}}
CAPACITY_PRESET_ROWS = {"10pct": {"proposed": {"encoder.noise": 0.75, "encoder.shrink_judge": "round"},
                                  "heuristic": {"heuristic.strength": 0.75}, "random_g": {}}}
# A later session's --horizon trial (E trained once at the end of F's whole training) is retired:
# its rows stay in horizon.jsonl and horizon.json, its record is in docs/experiments.md.
# A longer budget at 10% (the same session, --longer): no method reached 99.3 on any test seed, and
# 60 epochs against 30 lowered all six validation losses, so whether twice as many again moves a
# method towards it, on the committed preset (width 64), is asked of the strongest baseline alone
# (a run of 120 epochs is over an hour on one thread). A measurement, not a trial: the budget is
# shared, and would be adopted only by BUDGET_RULE over all six methods.
LONGER = {"10pct": {"heuristic": [{"classifier.epochs": 120}]}}
# The elastic method (issue 42) came after every other method's tuning: its trials of
# elastic.strength run on the committed preset (its budget and F), as many as each other method had
# of its own knob (five at 1%, two at 10%, the first at 10% the 1% choice); rows in elastic.jsonl,
# the choice (lowest validation loss) in elastic.json. It needs no G. At 1% "{}" ran at the
# default strength 1, before the preset took the choice (1.25); at 10% the first trial is that choice.
ELASTIC = {"1pct": [{}, {"elastic.strength": 0.5}, {"elastic.strength": 1.5}, {"elastic.strength": 0.75},
                    {"elastic.strength": 1.25}],
           "10pct": [{"elastic.strength": 1.25}, {"elastic.strength": 1.0}]}
# The semi-supervised keys (issue 42), chosen once for every method on the semi-supervised preset
# (mnist-SETTING-semi) with one method, SEMI_METHOD, the strongest supervised baseline at 1%
# (so that the choice is not made on proposed): "{}" is FixMatch's values with semi.ratio 2; rows
# in semi.jsonl, the choice in semi.json.
SEMI_METHOD = "heuristic"
SEMI = {"1pct": [{}, {"semi.threshold": 0.9}, {"semi.weight": 2.0}, {"semi.ratio": 4}], "10pct": []}
# loop.last_layer_check: a diagnostic, it changes no training and costs time; classifier.channels_last off:
# the layout every trial before it existed ran with (and the committed tables)
FIXED = {"loop.last_layer_check": False, "classifier.channels_last": False}
# The 1% preset now carries the choices; its trials start from the values it had before tuning, so
# that a trial means the same on every tuning seed ("{}" is the untuned preset). The 10% trials
# likewise start from the 10% preset as it was before them (the heuristic at 1.5).
# The trials also keep the epochs they ran with before the budget trials moved the presets to more
# (1%: 100 to 200; 10%: 30 to 60).
BASE = {"1pct": {"heuristic.strength": 1.0, "generator.temperature": 1.0, "kornia.trivialaugment_scale": 1.0,
                 "kornia.randaugment_n": 2, "kornia.randaugment_m": 10, "classifier.epochs": 100},
        "10pct": {"heuristic.strength": 1.5, "classifier.epochs": 30}}


def key(overrides: dict) -> str:
    return json.dumps(overrides, sort_keys=True)


def losses(rows: list[dict], method: str, overrides: dict) -> dict[int, float]:
    """{seed: validation loss} of ``method``'s rows run with ``overrides``."""
    return {r["seed"]: r["val_loss"] for r in rows if r["method"] == method and r["overrides"] == key(overrides)}


def finished(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def choose(trials: list[dict], setting: str) -> dict:
    """Per method: the overrides with the lowest mean validation loss over the seeds on which every
    trial of the method finished, with the table it was chosen from."""
    choice = {}
    for method, candidates in TRIALS[setting].items():
        rows = [t for t in trials if t["method"] == method]
        seeds = sorted(set.intersection(*[{t["seed"] for t in rows if t["overrides"] == key(c)} for c in candidates]) if rows else set())
        if not seeds:
            continue
        table = []
        for c in candidates:
            done = [t for t in rows if t["overrides"] == key(c) and t["seed"] in seeds]
            table.append({"overrides": c, "val_loss": statistics.mean(t["val_loss"] for t in done),
                          "val_accuracy": statistics.mean(t["val_accuracy"] for t in done),
                          "seconds": statistics.mean(t["seconds"] for t in done)})
        best = min(table, key=lambda row: row["val_loss"])
        choice[method] = {"seeds": seeds, "chosen": best["overrides"], "trials": table}
    return choice


def trial(method: str, config, seed: int, name: str, generator, task, pool, official_test, device, checkpoints) -> dict:
    """One full run of ``method`` with ``config`` on tuning seed ``seed``, judged on the validation
    split (the task's test split is its validation split); its log row."""
    # the trial's own task: the same splits, but its heuristic's ranges (G is the seed's)
    trial_task = dataclasses.replace(build_task(config, seed, device, pool, official_test), test=task.validation)
    start = time.perf_counter()
    result = run_method(method, trial_task, config, seed, generator=generator, checkpoint=checkpoints.phase(f"seed{seed}-{method}-{name}"))
    return {"seed": seed, "method": method, "val_loss": result.val_loss, "val_accuracy": result.val_accuracy,
            "seconds": result.seconds, "wall": time.perf_counter() - start, "threads": torch.get_num_threads(),
            **({"rounds": result.rounds} if result.rounds else {})}  # proposed: per round its losses, the factor kept


def budget_verdict(setting: str, rows: list[dict], choice: dict) -> dict:
    """BUDGET against the preset (each method's trial of the preset's value) on the seeds both ran;
    adopted by BUDGET_RULE."""
    table = {}
    for method, c in choice.items():
        mine = [r for r in rows if r["method"] == method and r["seed"] in c["seeds"]]
        if len(mine) == len(c["seeds"]):
            # the preset's value: the choice, but for none the shared learning rate (its choice could not be adopted)
            preset_value = {} if method == "none" else c["chosen"]
            chosen = next(t for t in c["trials"] if t["overrides"] == preset_value)
            table[method] = {"preset_val_loss": chosen["val_loss"], "budget_val_loss": statistics.mean(r["val_loss"] for r in mine)}
    lower = sum(t["budget_val_loss"] < t["preset_val_loss"] for t in table.values())
    return {"budget": BUDGET[setting], "methods": table, "lower": lower,
            "adopted": len(table) == len(TRIALS[setting]) and lower >= BUDGET_RULE}


def after_verdict(setting: str, rows: list[dict], budget_rows: list[dict]) -> dict:
    """Per method of AFTER: the committed preset's row and its trials, on the seeds all of them ran,
    and the overrides adopted ({} when none is lower). The preset's row is the trial "{}" where
    AFTER has one (run beside the others), else the budget row."""
    verdict = {}
    for method, candidates in AFTER.get(setting, {}).items():
        rerun = {} in candidates
        source = [r for r in rows if r["overrides"] == key({})] if rerun else budget_rows
        preset = {r["seed"]: r["val_loss"] for r in source if r["method"] == method}
        candidates = [c for c in candidates if c != {}]
        runs = [losses(rows, method, c) for c in candidates]
        seeds = sorted(set(preset).intersection(*runs))
        if not seeds:
            continue
        table = [{"overrides": c, "val_loss": statistics.mean(run[s] for s in seeds)} for c, run in zip(candidates, runs)]
        preset_loss = statistics.mean(preset[s] for s in seeds)
        best = min(table, key=lambda row: row["val_loss"])
        verdict[method] = {"seeds": seeds, "preset_val_loss": preset_loss, "preset_row": "after" if rerun else "budget", "trials": table,
                           "adopted": best["overrides"] if best["val_loss"] < preset_loss else {}}
    return verdict


def capacity_verdict(setting: str, rows: list[dict], after_rows: list[dict]) -> dict:
    """CAPACITY against the committed preset per method on the seeds both ran; adopted by BUDGET_RULE."""
    table = {}
    for method in TRIALS[setting]:
        wide, preset, source = losses(rows, method, CAPACITY[setting]), losses(rows, method, {}), "capacity"
        if not preset and method in CAPACITY_PRESET_ROWS.get(setting, {}):
            preset, source = losses(after_rows, method, CAPACITY_PRESET_ROWS[setting][method]), "after"
        seeds = sorted(set(wide) & set(preset))
        if seeds:
            table[method] = {"seeds": seeds, "preset_row": source, "preset_val_loss": statistics.mean(preset[s] for s in seeds),
                             "capacity_val_loss": statistics.mean(wide[s] for s in seeds)}
    lower = sum(t["capacity_val_loss"] < t["preset_val_loss"] for t in table.values())
    return {"capacity": CAPACITY[setting], "methods": table, "lower": lower,
            "adopted": len(table) == len(TRIALS[setting]) and lower >= BUDGET_RULE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", default="1pct", choices=["1pct", "10pct"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    parser.add_argument("--out", default=None)
    parser.add_argument("--select", action="store_true", help="only print the choice from the trials done")
    parser.add_argument("--budget", action="store_true", help="run every method with the preset and BUDGET (budget.jsonl)")
    parser.add_argument("--after", action="store_true", help="run AFTER's trials on the committed preset (after.jsonl)")
    parser.add_argument("--capacity", action="store_true", help="run every method with the preset and CAPACITY (capacity.jsonl)")
    parser.add_argument("--longer", action="store_true", help="run LONGER's measurements on the committed preset (longer.jsonl)")
    parser.add_argument("--elastic", action="store_true", help="run ELASTIC's trials on the committed preset (elastic.jsonl)")
    parser.add_argument("--semi", action="store_true", help="run SEMI's trials on the semi-supervised preset (semi.jsonl)")
    parser.add_argument("--methods", nargs="+", default=None, help="only these methods' trials")
    args = parser.parse_args()
    out = Path(args.out or Path(__file__).resolve().parent / "tuning" / args.setting)
    out.mkdir(parents=True, exist_ok=True)
    log, budget_log, after_log = out / "trials.jsonl", out / "budget.jsonl", out / "after.jsonl"
    capacity_log, longer_log, elastic_log = out / "capacity.jsonl", out / "longer.jsonl", out / "elastic.jsonl"
    semi_log = out / "semi.jsonl"
    preset = load_preset(f"mnist-{args.setting}").replace({"data.data_dir": args.data_dir, **FIXED})
    base = preset.replace(BASE[args.setting])
    if args.semi:
        preset = base = load_preset(f"mnist-{args.setting}-semi").replace({"data.data_dir": args.data_dir, **FIXED})
    if not args.select:
        device = resolve_device(base.run.device)
        pool, official_test = load_pool(base)
        checkpoints = Checkpoints(out / "checkpoints", every=base.run.checkpoint_every)
        for seed in args.seeds:
            task = build_task(base, seed, device, pool, official_test)
            task = dataclasses.replace(task, test=task.validation)  # the test images never reach a trial
            generator = None
            if not (args.elastic or args.semi):  # elastic and the semi trials' method need no G
                generator, g_seconds, _ = pretrain(task, base, seed, checkpoints)
                print(f"seed {seed}: G in {g_seconds:.0f} s", flush=True)
            jobs = [(method, str(number), log, base, overrides) for method, candidates in TRIALS[args.setting].items()
                    for number, overrides in enumerate(candidates)]
            if args.budget:  # the committed preset (the choices) with the other budget, every method
                jobs = [(method, "budget", budget_log, preset, BUDGET[args.setting]) for method in TRIALS[args.setting]]
            if args.after:  # the committed preset with AFTER's overrides
                jobs = [(method, f"after{number}", after_log, preset, overrides) for method, candidates in AFTER[args.setting].items()
                        for number, overrides in enumerate(candidates)]
            if args.capacity:  # every method wide first, then the committed preset where no same-CPU row exists
                jobs = [(method, "capacity", capacity_log, preset, CAPACITY[args.setting]) for method in TRIALS[args.setting]]
                jobs += [(method, "capacity-preset", capacity_log, preset, {}) for method in TRIALS[args.setting]
                         if method not in CAPACITY_PRESET_ROWS.get(args.setting, {})]
            if args.longer:  # the committed preset with LONGER's budget
                jobs = [(method, f"longer{number}", longer_log, preset, overrides) for method, candidates in LONGER[args.setting].items()
                        for number, overrides in enumerate(candidates)]
            if args.elastic:
                jobs = [("elastic", f"elastic{number}", elastic_log, preset, overrides) for number, overrides in enumerate(ELASTIC[args.setting])]
            if args.semi:
                jobs = [(SEMI_METHOD, f"semi{number}", semi_log, preset, overrides) for number, overrides in enumerate(SEMI[args.setting])]
            jobs = [job for job in jobs if args.methods is None or job[0] in args.methods]
            for method, name, path, config, overrides in jobs:
                if any(t["seed"] == seed and t["method"] == method and t["overrides"] == key(overrides) for t in finished(path)):
                    continue
                row = {**trial(method, config.replace(overrides), seed, name, generator, task, pool, official_test, device, checkpoints),
                       "overrides": key(overrides)}
                with path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"seed {seed} {method:>14} {key(overrides):45s} val loss {row['val_loss']:.4f} "
                      f"val acc {row['val_accuracy']:.3f} ({row['seconds']:.0f} s)", flush=True)
    choice = choose(finished(log), args.setting)
    (out / "choice.json").write_text(json.dumps(choice, indent=1))
    for method, c in choice.items():
        print(f"{method:>14} (seeds {c['seeds']}): chosen {c['chosen']}")
        for row in c["trials"]:
            print(f"    {json.dumps(row['overrides']):50s} val loss {row['val_loss']:.4f}  val acc {row['val_accuracy']:.3f}")
    if finished(budget_log):
        verdict = budget_verdict(args.setting, finished(budget_log), choice)
        (out / "budget.json").write_text(json.dumps(verdict, indent=1))
        for method, t in verdict["methods"].items():
            print(f"{method:>14}: val loss {t['preset_val_loss']:.4f} with the preset, {t['budget_val_loss']:.4f} with {verdict['budget']}")
        print(f"{verdict['budget']}: lower for {verdict['lower']} of {len(verdict['methods'])} methods; adopted: {verdict['adopted']}")
    if finished(after_log):
        verdict = after_verdict(args.setting, finished(after_log), finished(budget_log))
        (out / "after.json").write_text(json.dumps(verdict, indent=1))
        for method, v in verdict.items():
            trials = ", ".join(f"{json.dumps(t['overrides'])} {t['val_loss']:.4f}" for t in v["trials"])
            print(f"{method:>14} (seeds {v['seeds']}): val loss {v['preset_val_loss']:.4f} with the preset; {trials}; adopted {v['adopted']}")
    if finished(capacity_log):
        verdict = capacity_verdict(args.setting, finished(capacity_log), finished(after_log))
        (out / "capacity.json").write_text(json.dumps(verdict, indent=1))
        for method, t in verdict["methods"].items():
            print(f"{method:>14}: val loss {t['preset_val_loss']:.4f} with the preset ({t['preset_row']} row), "
                  f"{t['capacity_val_loss']:.4f} with {verdict['capacity']}")
        print(f"{verdict['capacity']}: lower for {verdict['lower']} of {len(verdict['methods'])} methods; adopted: {verdict['adopted']}")
    for name, method, trials in (("elastic", "elastic", ELASTIC), ("semi", SEMI_METHOD, SEMI)):
        rows = finished(out / f"{name}.jsonl")
        if not rows:
            continue
        table = [{"overrides": c, "val_loss": statistics.mean(losses(rows, method, c).values()),
                  "val_accuracy": statistics.mean(r["val_accuracy"] for r in rows if r["method"] == method and r["overrides"] == key(c))}
                 for c in trials[args.setting] if losses(rows, method, c)]
        best = min(table, key=lambda row: row["val_loss"])
        (out / f"{name}.json").write_text(json.dumps({"method": method, "seeds": sorted({r["seed"] for r in rows}), "trials": table,
                                                      "chosen": best["overrides"], "complete": len(table) == len(trials[args.setting])},
                                                     indent=1))
        for row in table:
            print(f"{name:>5} {method:>9} {json.dumps(row['overrides']):45s} val loss {row['val_loss']:.4f}  val acc {row['val_accuracy']:.3f}")
        print(f"{name:>5}: chosen {best['overrides']} ({len(table)} of {len(trials[args.setting])} trials)")
    for row in finished(longer_log):
        preset = losses(finished(capacity_log), row["method"], CAPACITY[args.setting]).get(row["seed"])
        print(f"{row['method']:>14} (seed {row['seed']}): val loss {row['val_loss']:.4f}, val acc {row['val_accuracy']:.3f} with "
              f"{row['overrides']}; {preset if preset is None else round(preset, 4)} with the preset")


if __name__ == "__main__":
    main()
