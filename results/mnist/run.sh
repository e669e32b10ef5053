#!/usr/bin/env bash
# MNIST with 1% and 10% of the labels (issue 11): all six methods on the presets as committed
# (infaug/presets/mnist-1pct.toml, mnist-10pct.toml: the values chosen on the validation split by
# results/mnist/tune.py), on the original files in ../shared/data. One folder per seed, so every
# finished seed stands alone and a killed seed continues with --resume; then results/mnist.json
# gathers the metrics.json of every seed. Run from the repository root:
#   bash results/mnist/run.sh                       # 1%: seeds 0-4, then 10%: seeds 0-2
#   SETTINGS=10pct SEEDS_10pct="0" bash results/mnist/run.sh
#   SETTINGS=1pct SUFFIX=-e200 bash results/mnist/run.sh   # into results/mnist/1pct-e200/ (200 epochs)
set -euo pipefail
cd "$(dirname "$0")/../.."
export INFAUG_PROGRESS=0
data=${INFAUG_DATA:-../shared/data}
for setting in ${SETTINGS:-1pct 10pct}; do
  seeds_var="SEEDS_$setting"; default=$([ "$setting" = 1pct ] && echo "0 1 2 3 4" || echo "0 1 2")
  folder=results/mnist/$setting${SUFFIX:-}
  mkdir -p "$folder"
  for seed in ${!seeds_var:-$default}; do
    out=$folder/seed$seed
    if python results/mnist/finished.py "$out"; then continue; fi
    resume=(); [ -f "$out/config.json" ] && resume=(--resume)
    infaug run --preset "mnist-$setting" --data-dir "$data" --seeds "$seed" --out "$out" "${resume[@]}" > "$out.log" 2>&1
    python results/mnist/gather.py > /dev/null
  done
done
python results/mnist/gather.py
