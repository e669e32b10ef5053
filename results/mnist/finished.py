"""Exits 0 when OUT holds a finished run, so that run.sh and rerun.sh skip it:

    python results/mnist/finished.py OUT [METHODS]   # METHODS: a,b,... (default: those OUT's run was given)

Finished means infaug run's marker OUT/checkpoints/FINISHED, or, for a committed run on a machine that
lost the (ignored) checkpoints, its report written and every method of METHODS in its metrics.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def finished(out: Path, methods: list[str] | None = None) -> bool:
    if (out / "checkpoints" / "FINISHED").exists():
        return True
    if not (out / "report.html").exists() or not (out / "metrics.json").exists():
        return False
    metrics = json.loads((out / "metrics.json").read_text())
    return set(methods or metrics["config"]["run"]["methods"]) <= set(metrics["methods"])


if __name__ == "__main__":
    sys.exit(0 if finished(Path(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) > 2 else None) else 1)
