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


@pytest.fixture(scope="module")
def gathered() -> dict:
    spec = importlib.util.spec_from_file_location("mnist_gather", RESULTS / "mnist" / "gather.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines gather(); writes nothing (main() does)
    return module.gather(RESULTS / "mnist")


def test_mnist_json_is_what_gather_makes_of_the_committed_runs(gathered):
    committed = json.loads((RESULTS / "mnist.json").read_text())
    assert json.loads(json.dumps(gathered)) == committed  # through JSON, as main() writes it


def readme_tables() -> dict[str, list[list[str]]]:
    """{SETTING: the rows (cells) of the first markdown table after the text "table `SETTING`)"}."""
    text = (ROOT / "README.md").read_text()
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
    assert {"1pct-v5", "10pct-v6"} <= tables.keys()  # the committed presets' tables
    for setting, rows in tables.items():
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


def test_the_readme_glance_table_shows_the_gathered_means(gathered):
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- mnist-glance -->")[1].split("<!-- /mnist-glance -->")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.strip().splitlines()[2:]]
    assert len(rows) == 2
    for first, *cells, _paper in rows:
        setting, seeds = re.fullmatch(r".*\(`([\w-]+)`, (\d+)\)", first).groups()
        summary = gathered[setting]["summary"]
        assert list(summary) == ["none", "heuristic", "random_g", "proposed", "trivialaugment", "randaugment"]
        for cell, s in zip(cells, summary.values(), strict=True):
            assert cell.strip("*") == f"{s['test_accuracy_mean']:.2f} ± {s['test_accuracy_sd']:.2f}" and s["seeds"] == int(seeds), (setting, cell)
