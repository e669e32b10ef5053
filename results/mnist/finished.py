"""Exits 0 when OUT holds a finished run, so that run.sh and rerun.sh skip it:

    python results/mnist/finished.py OUT [METHODS]   # METHODS: a,b,... (default: those OUT's run was given)

OUT is a run's folder (TABLE/seedS, or a part TABLE/seedS/part-M1-M2...) or a seed folder that
holds parts (then a method counts as finished when one of its parts finished it). Finished means
infaug run's marker OUT/checkpoints/FINISHED, or, for a committed run on a machine that does not
hold its (ignored) checkpoints, every method of METHODS having every seed of the run in its
metrics.json (infaug run lists each method there from the start and adds its figures when it ends;
the committed seeds other than seed 0 of each table keep no report or pictures). A run whose
checkpoints are here without the marker has not finished: run it again with --resume.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def finished_methods(run: Path) -> set[str]:
    """The methods of the run in ``run`` that finished every seed it was given."""
    if not (run / "metrics.json").exists():
        return set()
    metrics = json.loads((run / "metrics.json").read_text())
    wanted = len(metrics["config"]["run"]["seeds"])
    return {m for m, r in metrics["methods"].items() if len(r["test_accuracy"]) == wanted}


def finished(out: Path, methods: list[str] | None = None) -> bool:
    if (out / "checkpoints" / "FINISHED").exists():
        return True
    if (out / "checkpoints").exists():
        return False  # a run this machine started and has not finished
    runs = [out] if (out / "metrics.json").exists() else sorted(p for p in out.glob("part-*") if p.is_dir() and "." not in p.name)
    runs = [r for r in runs if (r / "metrics.json").exists()]
    if not runs:
        return False
    if methods is None:
        methods = [m for r in runs for m in json.loads((r / "metrics.json").read_text())["config"]["run"]["methods"]]
    return set(methods) <= set().union(*(finished_methods(r) for r in runs))


if __name__ == "__main__":
    sys.exit(0 if finished(Path(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) > 2 else None) else 1)
