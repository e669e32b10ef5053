"""Shared timing and reporting for the benchmark scripts.

Timings are taken against the reference in the same process, in alternating rounds (a block of
consecutive runs of each candidate in turn, repeated), so that a slow spell of a noisy machine hits
every candidate alike while each still runs as it would in a loop; reported as the median and the
spread (25th-75th percentile) of many runs after warm-up. On CUDA each run is timed with CUDA
events.
"""

import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from typing import Callable, Dict, List

import torch

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


# Environment variables that change what is measured: infaug's huge-page advice for large outputs,
# torch's huge pages for every allocation, the instruction set, the thread count.
SETTINGS = ["INFAUG_HUGE_PAGES", "THP_MEM_ALLOC_ENABLE", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS"]


def environment(device: torch.device) -> dict:
    """What the numbers were measured on: device, torch, CPU capability, threads."""
    env = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "device": str(device),
    }
    # settings that change what is measured, when set
    settings = {k: os.environ[k] for k in SETTINGS if k in os.environ}
    if settings:
        env["settings"] = settings
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    if device.type == "cuda":

        def run(fn: Callable[[], object]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) * 1e-3

        return run

    def run(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def compare(
    candidates: Dict[str, Callable[[], object]],
    device: torch.device,
    *,
    warmup: int = 5,
    runs: int = 50,
    min_seconds: float = 0.0,
    block: int = 10,
) -> Dict[str, dict]:
    """Times every candidate in alternating rounds of `block` runs, until each has at least `runs`
    runs and `min_seconds` have passed; returns {name: {median_ms, p25_ms, p75_ms, runs}}."""
    timer = _timer(device)
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    samples: Dict[str, List[float]] = {name: [] for name in candidates}
    start = time.perf_counter()
    done = 0
    while done < runs or time.perf_counter() - start < min_seconds:
        for name, fn in candidates.items():
            for _ in range(block):
                fn()  # brings the candidate's data back into cache after the others ran
            samples[name].extend(timer(fn) for _ in range(block))
        done += block
    return {name: _summary(values) for name, values in samples.items()}


def _summary(values: List[float]) -> dict:
    ms = sorted(v * 1e3 for v in values)
    quartiles = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
    return {
        "median_ms": statistics.median(ms),
        "p25_ms": quartiles[0],
        "p75_ms": quartiles[2],
        "runs": len(ms),
    }


def write(name: str, payload: dict) -> str:
    """Writes results/<name>.json and returns its path."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    return path
