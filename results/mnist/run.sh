#!/usr/bin/env bash
# MNIST with 1% of the labels (issue 11): all six methods, seeds 0-4, the mnist-1pct preset as
# shipped, on the original files in ../shared/data. One folder per seed, so every finished seed
# stands alone and a killed seed continues with --resume; then results/mnist.json gathers the
# metrics.json of every seed. Run from the repository root: bash results/mnist/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export INFAUG_PROGRESS=0
data=${INFAUG_DATA:-../shared/data}
mkdir -p results/mnist/1pct
for seed in ${SEEDS:-0 1 2 3 4}; do
  out=results/mnist/1pct/seed$seed
  if [ -f "$out/checkpoints/FINISHED" ]; then continue; fi
  resume=(); [ -f "$out/config.json" ] && resume=(--resume)
  infaug run --preset mnist-1pct --data-dir "$data" --seeds "$seed" --out "$out" "${resume[@]}" > "$out.log" 2>&1
done
python results/mnist/gather.py
