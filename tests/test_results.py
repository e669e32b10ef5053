"""The committed MNIST results: results/mnist.json is what results/mnist/gather.py makes of the
committed runs (results/mnist/TABLE/seedS/, a whole run or its parts), and every README table
introduced as "table `TABLE`):" shows that table's summary, figure by figure."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def load_script(name: str, script: str = "gather.py"):
    """results/mnist/SCRIPT as a fresh module (gather.py and tune.py define functions; only their
    main() writes or runs anything)."""
    spec = importlib.util.spec_from_file_location(name, RESULTS / "mnist" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gathered() -> dict:
    return load_script("mnist_gather").gather(RESULTS / "mnist")


def test_mnist_json_is_what_gather_makes_of_the_committed_runs(gathered):
    committed = json.loads((RESULTS / "mnist.json").read_text())
    assert json.loads(json.dumps(gathered)) == committed  # through JSON, as main() writes it


def readme_tables(path: Path | None = None) -> dict[str, list[list[str]]]:
    """{TABLE: the rows (cells) of the first markdown table after the text "table `TABLE`):"} of
    ``path`` (the README)."""
    text = (path or ROOT / "README.md").read_text()
    tables = {}
    for match in re.finditer(r"table `([\w-]+)`\):", text):
        lines = text[match.end():].splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("|"))
        rows = []
        for line in lines[start + 2:]:  # past the header and the |---| line
            if not line.startswith("|"):
                break
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        tables[match.group(1)] = rows
    return tables


def check_table(name: str, rows: list[list[str]], summary: dict) -> None:
    """A README table's rows show ``summary`` (a gathered table's), figure by figure."""
    assert [row[0] for row in rows] == list(summary), name
    for method, seeds, accuracy, _paper, versus, *_ in rows:
        s = summary[method]
        assert int(seeds) == s["seeds"], (name, method)
        assert accuracy.strip("*") == f"{s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f}", (name, method)
        if method == "proposed":
            assert versus == "", name
            continue
        expected = f"{s['proposed_minus_this_mean']:+.2f} ({s['proposed_wins']} of {s['seeds']}"
        assert versus.startswith(expected), (name, method, versus, expected)
        t = re.search(r"; (-?[\d.]+)\)$", versus)
        if t:  # the paired t, where the table gives it
            assert t.group(1) == f"{s['proposed_minus_this_t']:.2f}", (name, method)


def current_tables(gathered: dict) -> list[str]:
    return [name for name, table in gathered.items() if table["current"]]


CURRENT = ["1pct", "10pct", "1pct-semi", "10pct-semi"]  # the committed presets' tables


def test_mnist_json_marks_the_current_tables(gathered):
    current = current_tables(gathered)
    assert current[:2] == ["1pct", "10pct"] and current == [t for t in CURRENT if t in gathered]
    assert set(gathered) - set(CURRENT) == {"1pct-control"}  # and the control, reported but not current


def test_each_table_runs_its_own_preset():
    gather = load_script("mnist_gather_presets")
    assert [gather.table_preset(t) for t in (*CURRENT, "1pct-control")] == [
        "mnist-1pct", "mnist-10pct", "mnist-1pct-semi", "mnist-10pct-semi", "mnist-1pct"]


def test_the_results_page_tables_show_the_gathered_figures(gathered):
    tables = readme_tables(ROOT / "docs" / "results.md")
    assert set(current_tables(gathered)) <= tables.keys()
    for name, rows in tables.items():
        assert name in gathered, f"docs/results.md's table {name!r} is not one of results/mnist.json's {sorted(gathered)}"
        check_table(name, rows, gathered[name]["summary"])


def test_the_record_tables_show_the_gathered_figures(gathered):
    """The record's tables of the tree's tables (the control); the others are of folders removed
    since, checked by the next test."""
    record = readme_tables(RESULTS / "mnist" / "README.md")
    assert "1pct-control" in record
    for name, rows in record.items():
        if name in gathered:
            check_table(name, rows, gathered[name]["summary"])


REMOVED_AT = "f3078cb"  # the commit whose tree holds the run folders removed since (the record's "The folders removed")


def test_the_record_tables_of_removed_folders_show_the_figures_of_their_commit(gathered):
    """The record's tables of earlier presets (1pct-v5, 10pct-v6: F at width 32) name tables whose
    runs left the tree after commit REMOVED_AT; they show that commit's results/mnist.json, which
    that commit's tests checked was what its gather.py made of its runs."""
    record = readme_tables(RESULTS / "mnist" / "README.md")
    removed = {name: rows for name, rows in record.items() if name not in gathered}
    assert {"1pct-v5", "10pct-v6"} <= removed.keys()
    try:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{REMOVED_AT}:results/mnist.json"],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"no git history with commit {REMOVED_AT} here")
    then = json.loads(text)
    for name, rows in removed.items():
        assert name in then, f"the record's table {name!r} is neither in results/mnist.json nor at {REMOVED_AT}"
        check_table(name, rows, then[name]["summary"])


def glance_rows() -> list[list[str]]:
    """The cells of the README's at-a-glance table (between the mnist-glance markers)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- mnist-glance -->")[1].split("<!-- /mnist-glance -->")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.strip().splitlines()[2:]]


def glance_setting(first_cell: str) -> tuple[str, int]:
    setting, seeds = re.fullmatch(r".*\(`([\w-]+)`, (\d+)\)", first_cell).groups()
    return setting, int(seeds)


def test_the_readme_glance_table_shows_the_gathered_means(gathered):
    """One row per current table, one column per method in infaug's order; "-" where the table has
    not (yet) run the method on its seeds."""
    from infaug.config import METHODS

    rows = glance_rows()
    assert [glance_setting(first)[0] for first, *_ in rows] == current_tables(gathered)
    for first, *cells, _paper in rows:
        setting, seeds = glance_setting(first)
        summary = gathered[setting]["summary"]
        assert list(summary) == [m for m in METHODS if m in summary]
        for method, cell in zip(METHODS, cells, strict=True):
            if method not in summary:
                assert cell == "-", (setting, method, cell)
                continue
            s = summary[method]
            assert cell.strip("*") == f"{s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f}" and s["seeds"] == seeds, (setting, cell)


def table_runs(table: str) -> list[Path]:
    """The metrics.json of every run of a table folder: whole seeds' and parts'."""
    folder = RESULTS / "mnist" / table
    return sorted([*folder.glob("seed*/metrics.json"), *folder.glob("seed*/part-*/metrics.json")])


def test_the_current_tables_ran_the_committed_presets(gathered):
    """Every run of each current table (every part of every seed) has the configuration of its
    preset as committed, but for the seeds, methods and paths; a key added to infaug after a run
    counts as its default."""
    from infaug.config import differing_keys, flat, load_preset

    gather = load_script("mnist_gather_presets")
    free = {"run.seeds", "run.methods", "run.device", "data.data_dir", "preset"}
    for table in current_tables(gathered):
        preset = load_preset(gather.table_preset(table)).to_dict()
        paths = table_runs(table)
        assert paths, table
        for path in paths:
            ran = json.loads(path.read_text())["config"]
            # the layout: the tables ran in NCHW, before classifier.channels_last (within the step's
            # tested tolerance of it); elastic.strength is read by the elastic method alone
            unread = {"classifier.channels_last"} | ({"elastic.strength"} if "elastic" not in ran["run"]["methods"] else set())
            differ = differing_keys(preset, ran) - free - unread
            assert not differ, (str(path.relative_to(ROOT)), {k: (flat(preset).get(k), flat(ran).get(k)) for k in sorted(differ)})


def test_the_committed_pictures_are_seed_zeros(gathered):
    """Each table keeps the pictures and report of its seed 0 only (the tree stays small); every
    seed keeps its metrics, configuration and logs. A part stopped between two of its methods (its
    name lists those it finished) wrote no report."""
    gather = load_script("mnist_gather_pictures")
    for table in (*current_tables(gathered), "1pct-control"):
        runs = table_runs(table)
        assert runs, table
        for metrics in runs:
            run = metrics.parent
            seed = run if run.name.startswith("seed") else run.parent
            assert (run / "config.json").exists() and (run / "run.log").exists(), run
            assert run.with_name(run.name + ".log").exists(), run  # infaug run's output, beside its folder
            pictures = sorted(p.name for p in run.glob("*.png")) + sorted(p.name for p in run.glob("report.html"))
            ran = json.loads(metrics.read_text())
            stopped = gather.finished_methods(ran) != set(ran["methods"])  # a part stopped between its methods: no report
            if seed.name == "seed0" and not stopped:
                assert "report.html" in pictures and "augmentations.png" in pictures, run
            else:
                assert not pictures, run


def write_run(out: Path, seed: int, methods: dict, unfinished: tuple = (), **config) -> None:
    """A run's metrics.json in ``out``: methods {name: accuracy} (``unfinished``: listed, not yet
    run, as infaug run writes them), config {"section.key": value}, splits by the seed."""
    nested = {"run": {"seeds": [seed], "methods": [*methods, *unfinished]}}
    for key, value in config.items():
        section, name = key.split(".")
        nested.setdefault(section, {})[name] = value
    entries = {m: {"test_accuracy": [a], "seconds": [1.0]} for m, a in methods.items()}
    entries.update({m: {"test_accuracy": [], "seconds": []} for m in unfinished})
    metrics = {"methods": entries, "config": nested, "rounds": {m: [[{"round": 1}]] for m in methods},
               "splits": {str(seed): {"train": {"sha256": f"train of seed {seed}"}}}}
    if "proposed" in methods:
        metrics["holdout_i_aug"] = {source: [-0.1] for source in ("proposed", "random_g", "heuristic")}
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(metrics))


def accuracies(seed: dict) -> dict:
    return {m: r["test_accuracy"][0] for m, r in seed["methods"].items()}


def test_a_seeds_parts_are_merged_and_a_whole_seed_stands_alone(tmp_path):
    module = load_script("mnist_gather_parts")
    table = tmp_path / "t"
    write_run(table / "seed0", 0, {"none": 0.5, "heuristic": 0.9, "proposed": 0.8, "randaugment": 0.7})  # every method
    write_run(table / "seed2" / "part-none-heuristic", 2, {"none": 0.4, "heuristic": 0.91}, **{"data.data_dir": "a"})
    write_run(table / "seed2" / "part-proposed", 2, {"proposed": 0.92}, **{"data.data_dir": "b"})
    write_run(table / "seed2" / "part-randaugment", 2, {"randaugment": 0.6})
    write_run(table / "seed3" / "part-none-heuristic", 3, {"none": 0.3, "heuristic": 0.93})
    write_run(table / "seed3" / "part-proposed", 3, {}, unfinished=("proposed",))  # running: left out
    write_run(table / "seed3" / "part-randaugment", 3, {"randaugment": 0.65})
    (table / "seed3" / "part-proposed.claim").mkdir()  # rerun.sh's mark of a part being run
    gathered = module.gather(tmp_path, {"t": (True, "a table")})["t"]
    seeds = gathered["metrics"]
    assert list(seeds) == ["seed0", "seed2", "seed3"]
    assert seeds["seed0"] == json.loads((table / "seed0" / "metrics.json").read_text())  # as it ran
    assert accuracies(seeds["seed2"]) == {"none": 0.4, "heuristic": 0.91, "proposed": 0.92, "randaugment": 0.6}
    assert list(seeds["seed2"]["methods"]) == ["none", "heuristic", "proposed", "randaugment"]  # the table's order
    assert seeds["seed2"]["parts"] == {"part-none-heuristic": ["none", "heuristic"], "part-proposed": ["proposed"],
                                       "part-randaugment": ["randaugment"]}
    assert seeds["seed2"]["holdout_i_aug"]["proposed"] == [-0.1]  # proposed's diagnostics, from proposed's part
    assert seeds["seed2"]["config"]["data"]["data_dir"] == "b"  # and the rest of the record
    assert accuracies(seeds["seed3"]) == {"none": 0.3, "heuristic": 0.93, "randaugment": 0.65}
    assert "holdout_i_aug" not in seeds["seed3"]
    assert gathered["current"] and gathered["about"] == "a table"
    assert gathered["summary"]["proposed"]["test_accuracy"] == [80.0, 92.0]  # the table: only the seeds that ran every method


def test_a_part_may_be_a_run_of_more_methods_than_it_gives(tmp_path):
    module = load_script("mnist_gather_more")
    seed = tmp_path / "t" / "seed0"
    write_run(seed / "part-none", 0, {"none": 0.5, "heuristic": 0.1, "proposed": 0.1})  # only none taken from it
    write_run(seed / "part-heuristic-proposed", 0, {"heuristic": 0.9, "proposed": 0.8})
    merged = module.gather(tmp_path, {"t": (False, "")})["t"]["metrics"]["seed0"]
    assert accuracies(merged) == {"none": 0.5, "heuristic": 0.9, "proposed": 0.8}
    (seed / "part-none").rename(seed / "part-none-randaugment")  # a method its run did not run
    with pytest.raises(SystemExit, match="randaugment"):
        module.gather(tmp_path, {"t": (False, "")})
    (seed / "part-none-randaugment").rename(seed / "part-none-heuristic")  # a method taken from two parts
    with pytest.raises(SystemExit, match="two parts"):
        module.gather(tmp_path, {"t": (False, "")})


def test_the_parts_of_a_seed_agree_on_every_key_but_the_methods_and_the_data_path(tmp_path):
    module = load_script("mnist_gather_agree")
    seed = tmp_path / "t" / "seed0"
    write_run(seed / "part-none", 0, {"none": 0.5}, **{"classifier.lr": 0.1, "encoder.noise": 1.0})
    write_run(seed / "part-heuristic", 0, {"heuristic": 0.9}, **{"classifier.lr": 0.2, "encoder.noise": 1.0})
    with pytest.raises(SystemExit, match="classifier.lr"):
        module.gather(tmp_path, {"t": (True, "")})
    # a key a table varies on purpose, for the methods named: those must come from parts that agree on it
    write_run(seed / "part-proposed", 0, {"proposed": 0.8}, **{"classifier.lr": 0.2, "encoder.noise": 0.5})
    (seed / "part-heuristic" / "metrics.json").unlink()
    (seed / "part-heuristic").rmdir()
    write_run(seed / "part-heuristic", 0, {"heuristic": 0.9}, **{"classifier.lr": 0.1, "encoder.noise": 0.5})
    module.DIFFER = {"t": {"classifier.lr": {"heuristic", "proposed"}}}
    with pytest.raises(SystemExit, match="encoder.noise"):  # not a key the table varies
        module.gather(tmp_path, {"t": (True, "")})
    module.DIFFER = {"t": {"classifier.lr": {"heuristic", "proposed"}, "encoder.noise": {"heuristic", "proposed"}}}
    with pytest.raises(SystemExit, match="classifier.lr"):  # heuristic at 0.1, proposed at 0.2
        module.gather(tmp_path, {"t": (True, "")})
    module.DIFFER = {"t": {"classifier.lr": {"none", "heuristic"}, "encoder.noise": {"heuristic", "proposed"}}}
    assert set(module.gather(tmp_path, {"t": (True, "")})["t"]["metrics"]["seed0"]["methods"]) == {"none", "heuristic", "proposed"}
    write_run(tmp_path / "t" / "seed1" / "part-none", 1, {"none": 0.5}, **{"classifier.lr": 0.1, "encoder.noise": 1.0})
    write_run(tmp_path / "t" / "seed1" / "part-heuristic", 2, {"heuristic": 0.9}, **{"classifier.lr": 0.1, "encoder.noise": 1.0})
    with pytest.raises(SystemExit, match="other seeds or splits"):  # a part of another seed
        module.gather(tmp_path, {"t": (True, "")})


def test_gather_refuses_runs_outside_its_tables(tmp_path):
    module = load_script("mnist_gather_stray")
    write_run(tmp_path / "t" / "seed0", 0, {"none": 0.5})
    write_run(tmp_path / "old" / "seed0" / "part-none", 0, {"none": 0.5})
    with pytest.raises(SystemExit, match="old"):
        module.gather(tmp_path, {"t": (True, "")})
    assert list(module.gather(tmp_path, {"t": (True, ""), "old": (False, "")})) == ["t", "old"]


def test_the_capacity_verdict_counts_methods_by_the_rule_and_takes_the_same_cpu_preset_row():
    tune = load_script("mnist_tune", "tune.py")
    wide = tune.key(tune.CAPACITY["10pct"])
    methods = list(tune.TRIALS["10pct"])
    lower = {"none", "heuristic", "trivialaugment"}  # three wider runs below their preset: not adopted
    rows = [{"seed": 100, "method": m, "overrides": wide, "val_loss": 0.05 if m in lower else 0.07} for m in methods]
    rows += [{"seed": 100, "method": m, "overrides": tune.key({}), "val_loss": 0.06} for m in methods
             if m not in tune.CAPACITY_PRESET_ROWS["10pct"]]
    after = [{"seed": 100, "method": m, "overrides": tune.key(o), "val_loss": 0.06}
             for m, o in tune.CAPACITY_PRESET_ROWS["10pct"].items()]
    after.append({"seed": 100, "method": "heuristic", "overrides": tune.key({"heuristic.strength": 9.0}), "val_loss": 0.01})
    verdict = tune.capacity_verdict("10pct", rows, after)
    assert verdict["methods"]["heuristic"] == {"seeds": [100], "preset_row": "after", "preset_val_loss": 0.06, "capacity_val_loss": 0.05}
    assert verdict["methods"]["none"]["preset_row"] == "capacity"
    assert (verdict["lower"], verdict["adopted"]) == (3, False)
    rows[methods.index("randaugment")]["val_loss"] = 0.04  # a fourth: adopted
    assert tune.capacity_verdict("10pct", rows, after)["adopted"]
    assert not tune.capacity_verdict("10pct", rows[:-1], after)["adopted"]  # a method without its preset row: no verdict yet


def test_the_accuracy_picture_draws_every_seed_of_the_gathered_tables(gathered):
    plot = load_script("mnist_plot", "plot.py")
    drawn = plot.panels(gathered)
    assert [p["table"] for p in drawn] == [t for t in plot.PANELS if t in gathered]
    for panel in drawn:
        summary = gathered[panel["table"]]["summary"]
        assert [row["method"] for row in panel["methods"]] == list(summary)
        low, high = panel["xlim"]
        for row in panel["methods"]:
            assert row["seeds"] == summary[row["method"]]["test_accuracy"], (panel["table"], row["method"])
            # a method is either drawn whole on the scale or written out in words below it
            assert row["off_scale"] == (max(row["seeds"]) < low), (panel["table"], row["method"])
            assert row["off_scale"] or all(low <= a <= high for a in row["seeds"]), (panel["table"], row["method"])
        assert not any(row["off_scale"] for row in panel["methods"] if row["method"] != "none")
    assert next(r for r in drawn[0]["methods"] if r["method"] == "none")["off_scale"]  # 1%: none is 18 points below


def test_the_committed_accuracy_picture_is_what_plot_draws_of_mnist_json(tmp_path):
    from PIL import Image, ImageChops

    plot = load_script("mnist_plot_png", "plot.py")
    figure = plot.draw(json.loads((RESULTS / "mnist.json").read_text()))
    figure.savefig(tmp_path / "accuracy.png", format="png", dpi=100)
    fresh = Image.open(tmp_path / "accuracy.png").convert("RGB")
    committed = Image.open(RESULTS / "mnist" / "accuracy.png").convert("RGB")
    assert fresh.size == committed.size
    # the same pixels, within a small tolerance for rendering; a seed's dot moved by 0.03 points
    # changes about 45 of them by more than 16 levels
    difference = ImageChops.difference(fresh, committed).convert("L")
    changed = sum(difference.histogram()[17:])
    assert changed < 10, f"{changed} pixels differ: run python results/mnist/plot.py after gather.py"


def test_finished_knows_a_committed_run_without_its_checkpoints(tmp_path):
    finished = load_script("mnist_finished", "finished.py").finished
    out = tmp_path / "seed0"
    assert not finished(out)
    write_run(out, 0, {"none": 0.5}, unfinished=("proposed",))
    assert not finished(out) and finished(out, ["none"])  # metrics.json is rewritten after each method
    (out / "metrics.json").unlink()
    out.rmdir()
    write_run(out, 0, {"none": 0.5, "proposed": 0.8})  # a committed seed: no report, no pictures
    assert finished(out) and finished(out, ["proposed"])
    assert not finished(out, ["proposed", "heuristic"])
    (out / "checkpoints").mkdir()  # its checkpoints here, without the marker: a run to --resume
    assert not finished(out)
    (out / "checkpoints" / "FINISHED").write_text("")
    assert finished(out, ["heuristic"])  # infaug run's own marker


def test_finished_knows_a_seed_of_parts(tmp_path):
    finished = load_script("mnist_finished_parts", "finished.py").finished
    seed = tmp_path / "seed2"
    write_run(seed / "part-none-heuristic", 2, {"none": 0.5, "heuristic": 0.9})
    write_run(seed / "part-proposed", 2, {}, unfinished=("proposed",))
    (seed / "part-proposed.claim").mkdir()  # rerun.sh's mark of a part being run
    assert finished(seed / "part-none-heuristic", ["none", "heuristic"]) and not finished(seed / "part-proposed", ["proposed"])
    assert not finished(seed) and finished(seed, ["none", "heuristic"])
    (seed / "part-proposed" / "checkpoints").mkdir(parents=True)
    (seed / "part-proposed" / "checkpoints" / "FINISHED").write_text("")
    assert finished(seed / "part-proposed", ["proposed"])


def test_the_objective_noise_splits_e_s_objective_into_the_target_rows_exactly():
    """objective_noise.py's J_t: their mean over the target is the engine's own mean I_aug, and a
    target row's J_t is the J of that row alone as the target."""
    import torch
    from torch import nn

    from infaug.engine import LastLayerInfluence

    noise = load_script("mnist_objective_noise", "objective_noise.py")
    torch.manual_seed(0)

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.head = nn.Sequential(nn.Linear(6, 5), nn.Tanh()), nn.Linear(5, 3)

    model = Small().double()
    x, y = torch.randn(40, 6, dtype=torch.float64), torch.randint(0, 3, (40,))
    x_aug = x + 0.3 * torch.randn_like(x)
    target = (torch.randn(12, 6, dtype=torch.float64), torch.randint(0, 3, (12,)))

    def engine_on(t):
        e = LastLayerInfluence(model.head.weight.detach(), model.head.bias.detach(), damping=0.1)
        e.fit(model.features(x).detach(), y)
        return e.set_validation(model.features(t[0]).detach(), t[1])

    engine = engine_on(target)
    w, b = model.head.weight.detach(), model.head.bias.detach()
    d = noise.row_gradients(model, x_aug, y, w, b).mean(0) - noise.row_gradients(model, x, y, w, b).mean(0)
    rows = noise.contributions(engine, d, noise.row_gradients(model, *target, w, b))
    with torch.no_grad():
        whole = engine.aug(model.features(x), model.features(x_aug), y).mean()
        one = engine_on((target[0][3:4], target[1][3:4])).aug(model.features(x), model.features(x_aug), y).mean()
    assert torch.allclose(rows.mean(), whole, rtol=1e-9, atol=1e-12)
    assert torch.allclose(rows[3], one, rtol=1e-9, atol=1e-12)
    summary = noise.mean_se(rows)
    assert summary["rows"] == 12 and abs(summary["se"] - float(rows.std()) / 12 ** 0.5) < 1e-15
