#!/usr/bin/env bash
# The choice of E's objective on the default preset, judged on the validation split only:
# the plain mean I_aug against the clipped one with the trust region (the defaults), seeds 0 and 1,
# next to random_g and heuristic on the same seeds. Writes results/tuning/NAME/metrics.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
export INFAUG_PROGRESS=0
run() { name=$1; shift; infaug run --out "results/tuning/$name" "$@" > "results/tuning/$name.log" 2>&1; }
for seed in 0 1; do
  run "plain-seed$seed" --seeds "$seed" --methods proposed --set encoder.kl=0 --set encoder.clip=0
  run "clip-seed$seed" --seeds "$seed" --methods proposed --set encoder.kl=0 --set encoder.clip=1
  run "kl-clip-seed$seed" --seeds "$seed" --methods proposed
done
python - <<'PY'
import json, pathlib
root = pathlib.Path("results/tuning")
rows = []
for path in sorted(root.glob("*/metrics.json")):
    m = json.loads(path.read_text())
    e = m["config"]["encoder"]
    rows.append({"run": path.parent.name, "seed": m["config"]["run"]["seeds"][0], "kl": e["kl"], "clip": e["clip"],
                 "val_loss": m["methods"]["proposed"]["val_loss"][0], "val_accuracy": m["methods"]["proposed"]["val_accuracy"][0],
                 "round_val_loss": [r["val_loss"] for r in m["rounds"]["proposed"][0]],
                 "holdout_i_aug_after_E": [r["holdout_i_aug_trained"] for r in m["rounds"]["proposed"][0]]})
(root / "summary.json").write_text(json.dumps(rows, indent=1))
for r in rows:
    print(f"{r['run']:>16}  val loss {r['val_loss']:.4f}  val acc {r['val_accuracy']:.2f}")
PY
