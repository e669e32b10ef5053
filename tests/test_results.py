"""The committed MNIST results: results/mnist.json is what results/mnist/gather.py makes of the
committed runs (results/mnist/SETTING/seedS/metrics.json), and every README table introduced as
"table `SETTING`" shows that setting's summary, figure by figure."""

from __future__ import annotations

import importlib.util
import json
import re
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


def readme_tables(path: Path = ROOT / "README.md") -> dict[str, list[list[str]]]:
    """{SETTING: the rows (cells) of the first markdown table after the text "table `SETTING`)"}."""
    text = path.read_text()
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


def test_the_readme_tables_show_the_gathered_figures(gathered):
    tables = readme_tables()
    assert {"1pct-w64", "10pct-w64"} <= tables.keys()  # the committed presets' tables
    record = readme_tables(RESULTS / "mnist" / "README.md")
    assert {"1pct-v5", "10pct-v6"} <= record.keys()  # the presets before the capacity trial, now in the record
    for setting, rows in [*tables.items(), *record.items()]:
        summary = gathered[setting]["summary"]
        assert [row[0] for row in rows] == list(summary), setting
        for method, seeds, accuracy, _paper, versus, *_ in rows:
            s = summary[method]
            assert int(seeds) == s["seeds"], (setting, method)
            assert accuracy.strip("*") == f"{s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f}", (setting, method)
            if method == "proposed":
                assert versus == "", setting
                continue
            expected = f"{s['proposed_minus_this_mean']:+.2f} ({s['proposed_wins']} of {s['seeds']}"
            assert versus.startswith(expected), (setting, method, versus, expected)
            t = re.search(r"; (-?[\d.]+)\)$", versus)
            if t:  # the paired t, where the table gives it
                assert t.group(1) == f"{s['proposed_minus_this_t']:.2f}", (setting, method)


def glance_rows() -> list[list[str]]:
    """The cells of the README's at-a-glance table (between the mnist-glance markers)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- mnist-glance -->")[1].split("<!-- /mnist-glance -->")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.strip().splitlines()[2:]]


def glance_setting(first_cell: str) -> tuple[str, int]:
    setting, seeds = re.fullmatch(r".*\(`([\w-]+)`, (\d+)\)", first_cell).groups()
    return setting, int(seeds)


def test_the_readme_glance_table_shows_the_gathered_means(gathered):
    rows = glance_rows()
    assert len(rows) == 2
    for first, *cells, _paper in rows:
        setting, seeds = glance_setting(first)
        summary = gathered[setting]["summary"]
        assert list(summary) == ["none", "heuristic", "random_g", "proposed", "trivialaugment", "randaugment"]
        for cell, s in zip(cells, summary.values(), strict=True):
            assert cell.strip("*") == f"{s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f}" and s["seeds"] == seeds, (setting, cell)


def test_the_glance_tables_ran_the_committed_presets():
    """Each glance row's own runs (its setting's folder; gather.py checks the methods it takes from a
    base folder against them) have the configuration of the preset the README calls committed, but
    for the seeds, methods and paths; a key added to infaug after a run counts as its default."""
    from infaug.config import differing_keys, flat, load_preset

    free = {"run.seeds", "run.methods", "run.device", "data.data_dir", "preset"}
    for first, *_ in glance_rows():
        setting, _seeds = glance_setting(first)
        preset = load_preset("mnist-" + setting.split("-")[0]).to_dict()
        paths = sorted((RESULTS / "mnist" / setting).glob("seed*/metrics.json"))
        assert paths, setting
        for path in paths:
            ran = json.loads(path.read_text())["config"]
            differ = differing_keys(preset, ran) - free
            assert not differ, (str(path.relative_to(ROOT)), {k: (flat(preset).get(k), flat(ran).get(k)) for k in sorted(differ)})


def write_seed(root: Path, folder: str, seed: int, methods: dict, **config):
    """A finished seed's metrics.json: methods {name: accuracy}, config {"section.key": value}."""
    nested = {"run": {"seeds": [seed]}}
    for key, value in config.items():
        section, name = key.split(".")
        nested.setdefault(section, {})[name] = value
    metrics = {"methods": {m: {"test_accuracy": [a], "seconds": [1.0]} for m, a in methods.items()}, "config": nested, "rounds": {}}
    path = root / folder / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(metrics))


def test_a_seed_added_later_passes_through_a_variant_that_did_not_run_it(tmp_path):
    module = load_script("mnist_gather_chain")
    # base: every method; v1 reruns proposed (noise) and left the heuristic out; v2 reruns proposed again (kl)
    module.VARIANTS = {"v1": ("base", {"encoder.noise"}, {"heuristic"}), "v2": ("v1", {"encoder.kl"})}
    everything = {"none": 0.5, "heuristic": 0.9, "proposed": 0.8}
    for seed in (0, 1):
        write_seed(tmp_path, "base", seed, everything, **{"encoder.noise": 1.0, "encoder.kl": 1.0})
    write_seed(tmp_path, "v1", 0, {"proposed": 0.85}, **{"encoder.noise": 0.5, "encoder.kl": 1.0})
    write_seed(tmp_path, "v2", 0, {"proposed": 0.95}, **{"encoder.noise": 0.5, "encoder.kl": 0.1})
    write_seed(tmp_path, "v2", 1, {"proposed": 0.97}, **{"encoder.noise": 0.5, "encoder.kl": 0.1})  # v1 never ran seed 1
    v2 = module.resolved(tmp_path, "v2")
    assert set(v2) == {"seed0", "seed1"}
    # seed 1 of v2 takes none from base (through v1), not base's proposed (v1 reruns it) nor its heuristic (v1 leaves it out)
    assert {m: r["test_accuracy"][0] for m, r in v2["seed1"]["methods"].items()} == {"none": 0.5, "proposed": 0.97}
    assert {m: r["test_accuracy"][0] for m, r in v2["seed0"]["methods"].items()} == {"none": 0.5, "proposed": 0.95}
    # a key that no variant of the chain changes may not differ
    write_seed(tmp_path, "v2", 2, {"proposed": 0.9}, **{"encoder.noise": 0.5, "encoder.kl": 0.1, "classifier.lr": 0.1})
    write_seed(tmp_path, "base", 2, everything, **{"encoder.noise": 1.0, "encoder.kl": 1.0})
    with pytest.raises(SystemExit, match="classifier.lr"):
        module.resolved(tmp_path, "v2")


def test_a_seed_split_across_three_folders_is_merged_and_a_whole_one_stands_alone(tmp_path):
    module = load_script("mnist_gather_split")
    module.VARIANTS = {"a": ("b", set()), "b": ("c", set())}
    write_seed(tmp_path, "a", 0, {"none": 0.5, "heuristic": 0.9, "proposed": 0.8, "randaugment": 0.7})  # every method
    write_seed(tmp_path, "a", 2, {"none": 0.4, "heuristic": 0.91})
    write_seed(tmp_path, "b", 2, {"proposed": 0.92})
    write_seed(tmp_path, "c", 2, {"randaugment": 0.6})
    write_seed(tmp_path, "a", 3, {"none": 0.3, "heuristic": 0.93})  # its proposed has not run yet
    write_seed(tmp_path, "c", 3, {"randaugment": 0.65})
    a = module.resolved(tmp_path, "a")
    accuracy = {seed: {m: r["test_accuracy"][0] for m, r in s["methods"].items()} for seed, s in a.items()}
    assert accuracy["seed0"] == {"none": 0.5, "heuristic": 0.9, "proposed": 0.8, "randaugment": 0.7}
    assert accuracy["seed2"] == {"none": 0.4, "heuristic": 0.91, "proposed": 0.92, "randaugment": 0.6}
    assert accuracy["seed3"] == {"none": 0.3, "heuristic": 0.93, "randaugment": 0.65}
    summary = module.gather(tmp_path)["a"]["summary"]
    assert summary["proposed"]["test_accuracy"] == [80.0, 92.0]  # the table: only the seeds that ran every method


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
    write_seed(tmp_path, "", 0, {"none": 0.5, "proposed": 0.8}, **{"run.methods": ["none", "proposed"]})
    assert not finished(out)  # metrics.json is rewritten after each method: no report, not finished
    (out / "report.html").write_text("")
    assert finished(out) and finished(out, ["proposed"])
    assert not finished(out, ["proposed", "heuristic"])
    (out / "metrics.json").unlink()
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "FINISHED").write_text("")
    assert finished(out, ["heuristic"])  # infaug run's own marker
