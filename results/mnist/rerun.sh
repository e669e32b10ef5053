#!/usr/bin/env bash
# Runs some methods of a table's seeds (issue 11), each seed's into a part of its folder,
# results/mnist/TABLE/seedS/part-M1-M2... (METHODS=M1,M2,...; log part-M1-M2....log beside it), so
# that a seed's six methods can run in several processes side by side, or in pieces short enough
# that a session's end loses little; gather.py merges a seed's parts once each has finished, after
# checking that they ran one configuration but for run.methods and data.data_dir. A part already
# finished (finished.py) is skipped; a seed that holds a whole run (run.sh) is refused. The preset is
# mnist-TABLE up to the first "-"; SET adds --set KEY=VALUE for each of its space-separated items.
#   OMP_NUM_THREADS=1 TABLE=10pct SEEDS="5" METHODS=proposed,none,heuristic bash results/mnist/rerun.sh
# Several copies of this script may run the same loop: each takes the next part not yet taken (the
# .claim folders).
#
# The committed tables' parts, in this script's terms (they ran with rerun.sh at commit f3078cb,
# where its VERSION named a folder per part, results/mnist/SETTING-VERSION/seedS, and were moved
# here unchanged; the record's "The folders removed" lists them). Both ran before the presets took
# classifier.width = 64, hence the SET; one thread a run, on the AMD EPYC VM, two processes on the
# two cores:
#   10%, seeds 0 to 4 (decided before any ran: all five seeds, all six methods, reported whatever
#   they give), two processes side by side, balanced by run time:
#   OMP_NUM_THREADS=1 TABLE=10pct SEEDS="0 1 2 3 4" METHODS=proposed,none,heuristic SET=classifier.width=64 bash results/mnist/rerun.sh
#   OMP_NUM_THREADS=1 TABLE=10pct SEEDS="0 1 2 3 4" METHODS=random_g,trivialaugment,randaugment SET=classifier.width=64 bash results/mnist/rerun.sh
#   1%, the seeds left after the whole runs of 0, 1, 5 and 6 (run.sh; a session's end had killed
#   the runs of seeds 2 and 7, and a new machine had lost their checkpoints: results/mnist/killed/),
#   each seed in three parts of about half an hour each, the same loop in two shells:
#   for S in 2 3 4 7 8; do for M in none,heuristic,random_g proposed trivialaugment,randaugment; do
#     OMP_NUM_THREADS=1 TABLE=1pct SEEDS=$S METHODS=$M SET=classifier.width=64 bash results/mnist/rerun.sh
#   done; done
#   The control, table 1pct-control, cannot be run again: its parts ran the width-32 preset of
#   before the capacity trial and loop.round_candidates = 4, an option retired since (its command and
#   code: docs/experiments.md, commit 22dfc71); its parts are the runs of three folders at f3078cb.
set -euo pipefail
cd "$(dirname "$0")/../.."
export INFAUG_PROGRESS=0
data=${INFAUG_DATA:-../shared/data}
table=${TABLE:?TABLE=1pct or 10pct}
methods=${METHODS:?METHODS=a,b}
for seed in ${SEEDS:?SEEDS=\"0 1\"}; do
  if [ -f "results/mnist/$table/seed$seed/metrics.json" ]; then
    echo "rerun.sh: results/mnist/$table/seed$seed holds a whole run; its seed has no parts" >&2; exit 1
  fi
  out=results/mnist/$table/seed$seed/part-${methods//,/-}
  mkdir -p "$(dirname "$out")"
  if python results/mnist/finished.py "$out" "$methods"; then continue; fi
  mkdir "$out.claim" 2>/dev/null || continue  # another copy of this script runs this part
  trap 'rmdir "$out.claim" 2>/dev/null' EXIT
  resume=(); [ -f "$out/config.json" ] && resume=(--resume)
  sets=(); for kv in ${SET:-}; do sets+=(--set "$kv"); done
  infaug run --preset "mnist-${table%%-*}" --data-dir "$data" --seeds "$seed" --methods "$methods" "${sets[@]}" --out "$out" "${resume[@]}" > "$out.log" 2>&1
  python results/mnist/gather.py > /dev/null
  rmdir "$out.claim"; trap - EXIT
done
python results/mnist/gather.py
