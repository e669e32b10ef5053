#!/usr/bin/env bash
# MNIST with 1% and 10% of the labels (issue 11): all six methods on the presets as committed
# (infaug/presets/mnist-1pct.toml, mnist-10pct.toml: the values chosen on the validation split by
# results/mnist/tune.py), on the original files in ../shared/data, one whole run per seed into its
# table's folder, results/mnist/TABLE/seedS (log TABLE/seedS.log), so every finished seed stands
# alone and a killed seed continues with --resume; then results/mnist.json gathers every table
# (gather.py; a table is one of its TABLES, its preset mnist-TABLE where infaug has one, else
# mnist-TABLE up to the first "-": 1pct-semi runs mnist-1pct-semi, 1pct-control mnist-1pct). A seed
# already finished, in the tree or on this machine (finished.py), is skipped, and so is a seed that
# holds parts (run by rerun.sh; finish those with it). Run from the repository root:
#   bash results/mnist/run.sh                           # table 1pct: seeds 0-8, then 10pct: seeds 0-4
#   TABLES=10pct SEEDS_10pct="5" bash results/mnist/run.sh
#   SET="classifier.width=64" ...                       # --set KEY=VALUE for each space-separated item
#   METHODS=elastic ...                                 # only these methods (a,b,...), into seedS/part-a-b beside the seed's runs
# The elastic method's parts (issue 42; its preset strength, F in the NCHW layout the tables ran in):
#   OMP_NUM_THREADS=1 TABLES=1pct METHODS=elastic SET=classifier.channels_last=false bash results/mnist/run.sh
# The semi-supervised tables (issue 42; the presets as committed, F channels-last), proposed in a part
# of its own beside the other six so the two run side by side:
#   OMP_NUM_THREADS=1 TABLES=1pct-semi SEEDS_1pct_semi="0 1 2 3 4" METHODS=proposed bash results/mnist/run.sh
#   OMP_NUM_THREADS=1 TABLES=1pct-semi SEEDS_1pct_semi="0 1 2 3 4" METHODS=none,heuristic,random_g,trivialaugment,randaugment,elastic bash results/mnist/run.sh
# The committed tables' whole seeds (1pct: 0, 1, 5 and 6; one thread a run, two runs side by side
# on the two cores, before the preset took classifier.width = 64, hence the SET then; the commands
# as they ran, with rerun.sh's VERSION folders, are in rerun.sh at commit f3078cb):
#   OMP_NUM_THREADS=1 TABLES=1pct SEEDS_1pct="0 1" SET=classifier.width=64 bash results/mnist/run.sh
#   OMP_NUM_THREADS=1 TABLES=1pct SEEDS_1pct="5 6" SET=classifier.width=64 bash results/mnist/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export INFAUG_PROGRESS=0
data=${INFAUG_DATA:-../shared/data}
for table in ${TABLES:-1pct 10pct}; do
  seeds_var="SEEDS_${table//-/_}"; default=$([ "$table" = 1pct ] && echo "0 1 2 3 4 5 6 7 8" || echo "0 1 2 3 4")
  folder=results/mnist/$table
  mkdir -p "$folder"
  for seed in ${!seeds_var:-$default}; do
    out=$folder/seed$seed
    methods=(); if [ -n "${METHODS:-}" ]; then out=$out/part-${METHODS//,/-}; methods=(--methods "$METHODS"); mkdir -p "$(dirname "$out")"; fi
    if python results/mnist/finished.py "$out"; then continue; fi
    if [ -z "${METHODS:-}" ] && compgen -G "$out/part-*" > /dev/null; then
      echo "run.sh: $out holds parts, not a whole run: finish them with rerun.sh" >&2; continue
    fi
    resume=(); [ -f "$out/config.json" ] && resume=(--resume)
    sets=(); for kv in ${SET:-}; do sets+=(--set "$kv"); done
    preset=mnist-$table; [ -f "infaug/presets/$preset.toml" ] || preset=mnist-${table%%-*}
    infaug run --preset "$preset" --data-dir "$data" --seeds "$seed" "${methods[@]}" "${sets[@]}" --out "$out" "${resume[@]}" > "$out.log" 2>&1
    python results/mnist/gather.py > /dev/null
  done
done
python results/mnist/gather.py
