#!/usr/bin/env bash
# Everything issue 12 needs from a GPU machine, in one run that keeps going past a failing step:
# build infaug with all cores (CUDA kernels for sm_90), check that its CUDA kernels load, run
# tests/test_cuda.py and the cuda half of every device-parametrised test, the pytest-benchmark suite
# on cuda (warp, augment, influence, one E-training and one F-training step), the scripts
# (alternating rounds), and last the references under torch.compile, for as long as time lasts.
#
#   bash benchmarks/gpu.sh --fetch-wheels   # where pip reaches PyPI: the packages the GPU image lacks, into .whl/
#   bash benchmarks/gpu.sh                  # on the GPU machine (device run, carry [".whl"]): writes under $OUT
#
# The GPU image's python3 (its own torch with CUDA, pytest, pytest-benchmark, triton) runs everything;
# nothing is fetched there. What it lacks (kornia, kornia_rs, mlxtend, expecttest) comes from .whl/
# when carried; without it the tests that need them skip or fail, and the rest still runs.
#
# Under $OUT (7 files): summary.txt (the machine, then each step's rc and seconds: 124 = hit its time
# limit, "skipped" = no time left), build.log, tests.log, bench.log, bench-cuda.json (the suite
# without torch.compile), bench-cuda-compile.json (warp and augment with the compiled reference),
# scripts.tgz (the scripts' JSON: warp-cuda, influence-cuda, pipeline-cuda).
#
# Time: GPU_BUDGET_S (default 450 s) for all steps together; each step gets the smaller of its own
# cap and what is left, is sent SIGINT at its limit (pytest still writes its report and JSON) and
# KILL 20 s later. Other knobs: PYTHON (default python3), GPU_STEPS (the steps to run, default all:
# "wheels build import tests bench scripts compile"), GPU_BENCH_MAX_TIME (pytest-benchmark's
# --benchmark-max-time per benchmark, default 0.25 s).

set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
PY=${PYTHON:-python3}

if [[ "${1:-}" == "--fetch-wheels" ]]; then
    # the versions the project's environment uses; pure-Python wheels but kornia_rs (cp312, x86_64)
    exec "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$ROOT/.whl" \
        kornia==0.8.1 kornia_rs==0.2.0 mlxtend==0.25.0 expecttest==0.3.0
fi

OUT=${OUT:-/tmp/infaug-gpu-out}  # the device tool sets OUT; elsewhere, a folder outside the checkout
mkdir -p "$OUT"
BUDGET=${GPU_BUDGET_S:-450}
STEPS=" ${GPU_STEPS:-wheels build import tests bench scripts compile} "
MAX_TIME=${GPU_BENCH_MAX_TIME:-0.25}
SUMMARY=$OUT/summary.txt
START=$(date +%s)
export PYTHONUNBUFFERED=1
export MAX_JOBS=$(getconf _NPROCESSORS_ONLN)              # ninja's parallel jobs, in setup.py's build and a build at import
export INFAUG_EXTENSION_DIR=/tmp/infaug-extensions        # where a build at import (the fallback) is cached
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

left() { echo $((BUDGET - ($(date +%s) - START))); }

# step NAME CAP LOG COMMAND...: runs COMMAND (output appended to LOG) for at most min(CAP, time left),
# records its rc and seconds in the summary, and never stops the script.
step() {
    local name=$1 cap=$2 log=$3
    shift 3
    if [[ "$STEPS" != *" $name "* ]]; then
        printf '%-8s %8s %6s  %s\n' "$name" "-" "-" "not in GPU_STEPS" >>"$SUMMARY"
        return 0
    fi
    local limit=$(($(left) - 10))
    ((limit > cap)) && limit=$cap
    if ((limit < 15)); then
        printf '%-8s %8s %6s  %s\n' "$name" "skipped" "0" "no time left" | tee -a "$SUMMARY"
        return 0
    fi
    echo "===== $name: $* (limit ${limit} s, $(date -u +%H:%M:%S)) =====" >>"$log"
    local t0=$(date +%s)
    timeout -s INT -k 20 "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    local seconds=$(($(date +%s) - t0)) note=""
    ((rc == 124)) && note="hit its ${limit} s limit"
    printf '%-8s %8s %6s  %s\n' "$name" "$rc" "$seconds" "$note" | tee -a "$SUMMARY"
    return 0
}

{
    echo "# benchmarks/gpu.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${BUDGET} s, $(getconf _NPROCESSORS_ONLN) cores"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | sed 's/^/# gpu: /'
    echo "# nvcc: $( (nvcc --version 2>&1 || echo missing) | tail -n 1)"
    "$PY" - <<'EOF' 2>&1 | sed 's/^/# /'
import sys
from importlib import metadata
import torch
print(f"python {sys.version.split()[0]} at {sys.executable}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuda available {torch.cuda.is_available()}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
versions = []
for name in ["pytest", "pytest-benchmark", "pytest-xdist", "triton", "numpy", "kornia", "mlxtend", "expecttest"]:
    try:
        versions.append(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        versions.append(f"{name} (none)")
print("before the wheels: " + ", ".join(versions))
EOF
    printf '%-8s %8s %6s  %s\n' "step" "rc" "s" ""
} >"$SUMMARY"
cat "$SUMMARY"

# ---- wheels: the packages the image lacks, carried in .whl/ ---------------------------------------
if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
    step wheels 60 "$OUT/build.log" "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site "$ROOT"/.whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"  # the image has none of these: nothing of its own is replaced
else
    printf '%-8s %8s %6s  %s\n' wheels "-" "-" "no .whl/ carried (the image has no kornia, kornia_rs, mlxtend, expecttest)" | tee -a "$SUMMARY"
fi

# ---- build: in place, all cores, the CUDA kernels for the H200 (sm_90); FORCE_CUDA fails loudly --
step build 240 "$OUT/build.log" env TORCH_CUDA_ARCH_LIST=9.0 FORCE_CUDA=1 "$PY" setup.py build_ext --inplace

# ---- import: the kernels load (if the build failed, infaug compiles itself here) and agree -------
cat >/tmp/gpu_import_check.py <<'EOF'
import torch, infaug
print("infaug._C:", getattr(infaug._C, "__file__", infaug._C))
g = torch.Generator().manual_seed(0)
x = torch.rand(4, 3, 16, 16, generator=g, dtype=torch.float64)
theta_w = torch.tensor([1.0, 0, 0, 1], dtype=torch.float64).view(1, 4, 1, 1) + 0.1 * torch.randn(4, 4, 16, 16, generator=g, dtype=torch.float64)
theta_b = 0.1 * torch.randn(4, 2, 16, 16, generator=g, dtype=torch.float64)
on_gpu = infaug.warp(*(t.cuda() for t in (x, theta_w, theta_b)))
torch.cuda.synchronize()
torch.testing.assert_close(on_gpu.cpu(), infaug.warp(x, theta_w, theta_b))
print("infaug.warp on", torch.cuda.get_device_name(), "agrees with the CPU")
EOF
step import 200 "$OUT/build.log" "$PY" /tmp/gpu_import_check.py

# ---- tests: test_cuda.py and the cuda half of every device-parametrised test ---------------------
PARALLEL=()
"$PY" -c "import xdist" 2>/dev/null && PARALLEL=(-n 4)
step tests 150 "$OUT/tests.log" "$PY" -m pytest tests -k cuda "${PARALLEL[@]}" -q -rfEs --durations=15 -p no:cacheprovider

# ---- bench: the pytest-benchmark suite on cuda, without torch.compile ----------------------------
BENCH=(-m pytest --benchmark-only --bench-device cuda "--benchmark-max-time=$MAX_TIME" -q -p no:cacheprovider
    --benchmark-columns=min,median,iqr,rounds)
step bench 180 "$OUT/bench.log" "$PY" "${BENCH[@]}" benchmarks --bench-compile off "--benchmark-json=$OUT/bench-cuda.json"

# ---- scripts: alternating rounds in one process (the ratio method), short settings ----------
SCRIPT_RESULTS=(warp-cuda influence-cuda pipeline-cuda)  # under benchmarks/results/, then in scripts.tgz
run_scripts() {
    "$PY" benchmarks/bench_warp.py --device cuda --no-compile --min-seconds 0.2 --out warp-cuda
    local a=$?
    "$PY" benchmarks/bench_influence.py --device cuda --runs 20 --out influence-cuda
    local b=$?
    "$PY" benchmarks/bench_pipeline.py --device cuda --runs 30 --out pipeline-cuda
    local c=$?
    echo "script rcs: warp $a, influence $b, pipeline $c"
    return $((a || b || c))
}
export -f run_scripts
export PY
if [[ "$STEPS" == *" scripts "* ]]; then
    for name in "${SCRIPT_RESULTS[@]}"; do rm -f "benchmarks/results/$name.json"; done  # none left from elsewhere
fi
step scripts 120 "$OUT/bench.log" bash -c run_scripts
MADE=()
for name in "${SCRIPT_RESULTS[@]}"; do
    [[ -f benchmarks/results/$name.json ]] && MADE+=("$name.json")
done
((${#MADE[@]})) && tar czf "$OUT/scripts.tgz" -C benchmarks/results "${MADE[@]}"

# ---- compile: warp, then augment, each group with its fused and eager candidates too -------------
step compile 600 "$OUT/bench.log" "$PY" "${BENCH[@]}" benchmarks/test_bench_warp.py --bench-compile on \
    "--benchmark-json=$OUT/bench-cuda-compile.json"

# ---- what the reply's tail shows: the ratios, then the summary -----------------------------------
echo
sed -n '/infaug: speed-ups/,/ in [0-9.]*s/p' "$OUT/bench.log" 2>/dev/null | cut -c1-150 | tail -n 50
echo
grep -h -E "^(FAILED|ERROR)|[0-9]+ (passed|failed)" "$OUT/tests.log" 2>/dev/null | cut -c1-150 | tail -n 10
echo
echo "total $(($(date +%s) - START)) s of a ${BUDGET} s budget"
cat "$SUMMARY"
