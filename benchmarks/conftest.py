"""The benchmark suite as pytest-benchmark tests: not part of the default test run
(pyproject's ``testpaths`` is ``tests``), run it by naming this folder:

    pytest benchmarks/ --benchmark-only                     # the target sizes, on cpu (and cuda where visible)
    pytest benchmarks/ --benchmark-only --bench-quick       # small sizes, no torch.compile: a smoke run
    pytest benchmarks/ --benchmark-only --benchmark-json=benchmarks/results/pytest-cpu.json

Each test times one candidate (the fused op, the reference in torch ops, the reference under
torch.compile, ...) of one configuration; the candidates of a configuration share a
``benchmark.group``, so pytest-benchmark's table (grouped by group, its default) shows them side by
side, with the "(Relative)" column giving each against the fastest of its group. Every test checks
its candidate against the reference on the same inputs before anything is timed. At the end, the
ratios (each candidate's median over the fused op's, the scripts' ``speedup_vs_*``) are printed
and added to the JSON under ``"infaug"``, with the device, torch version and CPU capability.

Unlike the scripts (``python benchmarks/bench_*.py``), which alternate the candidates in rounds in
one process so that a noisy spell hits all alike, pytest-benchmark times each candidate in one
stretch: on a busy machine its ratios are less reliable, and the scripts' are the ones to quote.
"""

from __future__ import annotations

import os
import sys
import types
from collections import defaultdict
from typing import Callable, Dict, Optional

import pytest
import torch

# The scripts' helpers (make_inputs, step, problem, check_agreement, common.environment) are
# imported from the scripts themselves, never copied.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

import infaug  # noqa: E402,F401  (registers torch.ops.infaug)

# group -> candidate -> median seconds, and group -> memory floor in seconds (CUDA), for the summary
_MEDIANS: Dict[str, Dict[str, float]] = defaultdict(dict)
_FLOORS: Dict[str, float] = {}

_THIS_MODULE = sys.modules[__name__]


def pytest_plugin_registered(plugin, manager) -> None:
    # pytest imports each conftest.py outside a package as the module "conftest", and the last one
    # imported keeps the name. tests/ import their helpers `from conftest import ...`, so when
    # tests/ and benchmarks/ are collected in one run (`pytest .`, `pytest tests benchmarks`), give
    # the name back to the conftest imported before this one. Nothing imports this one by name.
    if plugin is not _THIS_MODULE or sys.modules.get("conftest") is not _THIS_MODULE:
        return
    others = [p for p in manager.get_plugins()
              if isinstance(p, types.ModuleType) and p.__name__ == "conftest" and p is not _THIS_MODULE]
    if others:
        sys.modules["conftest"] = others[-1]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infaug benchmarks")
    group.addoption("--bench-quick", action="store_true",
                    help="small sizes and no torch.compile candidates: proves the suite runs, in well under a minute")
    group.addoption("--bench-device", action="append", choices=["cpu", "cuda"], default=None,
                    help="device to benchmark (repeatable; default: cpu, and cuda when a GPU is visible)")
    group.addoption("--bench-compile", choices=["auto", "on", "off"], default="auto",
                    help="time the reference under torch.compile too (auto: on, except with --bench-quick)")
    group.addoption("--bench-keep-data", action="store_true",
                    help="keep every round's time in --benchmark-json (left out by default: tens of MB for the full suite)")
    group.addoption("--bench-per-sample-limit", type=float, default=4.0,
                    help="largest (N, K, D) per-sample-gradient tensor in GB to time, as bench_influence.py")


def devices(config: pytest.Config) -> list:
    chosen = config.getoption("--bench-device")
    if chosen is None:
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return list(dict.fromkeys(chosen))


@pytest.hookimpl(tryfirst=True)  # the outermost parameter: every cpu benchmark, then every cuda one
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", devices(metafunc.config))


@pytest.fixture(autouse=True)
def _needs_its_device(request: pytest.FixtureRequest) -> None:
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("device") == "cuda" and not torch.cuda.is_available():
        pytest.skip("--bench-device cuda, but no CUDA GPU is visible")


@pytest.fixture(scope="session")
def quick(request: pytest.FixtureRequest) -> bool:
    return request.config.getoption("--bench-quick")


@pytest.fixture(scope="session")
def per_sample_limit(request: pytest.FixtureRequest) -> float:
    return request.config.getoption("--bench-per-sample-limit")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_BANDWIDTH: Dict[str, float] = {}


def copy_bandwidth(device: torch.device) -> float:
    """Bytes per second of a large device-to-device copy (read plus written), measured once."""
    key = str(device)
    if key not in _BANDWIDTH:
        source = torch.empty(2**28, dtype=torch.float32, device=device).uniform_()  # 1 GiB
        target = torch.empty_like(source)
        for _ in range(3):
            target.copy_(source)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(10):
            start.record()
            target.copy_(source)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e-3)
        _BANDWIDTH[key] = 2 * source.numel() * source.element_size() / sorted(times)[len(times) // 2]
        del source, target
        torch.cuda.empty_cache()
    return _BANDWIDTH[key]


@pytest.fixture
def bench(benchmark, request: pytest.FixtureRequest):
    """bench(fn, device, group=..., candidate=..., bytes_moved=None, **info): warms `fn` up, then
    times it with pytest-benchmark; on CUDA every call is synchronised, so each timing covers the
    device's work, not only its launch. `bytes_moved` (what must be read and written once) gives the
    memory floor on a GPU."""

    def run(fn: Callable[[], object], device: torch.device, *, group: str, candidate: str,
            bytes_moved: Optional[int] = None, warmup: int = 3, **info) -> None:
        for _ in range(warmup):
            fn()
        synchronize(device)
        benchmark.group = group
        benchmark.extra_info.update(candidate=candidate, device=str(device), **info)
        if device.type == "cuda":
            if bytes_moved is not None:
                bandwidth = copy_bandwidth(device)
                _FLOORS[group] = bytes_moved / bandwidth
                benchmark.extra_info.update(bytes_moved=bytes_moved, copy_bandwidth_gbs=bandwidth / 1e9,
                                            memory_floor_ms=1e3 * bytes_moved / bandwidth)

            def timed() -> None:
                fn()
                torch.cuda.synchronize(device)
        else:
            timed = fn
        benchmark(timed)
        if benchmark.stats is not None:  # None under --benchmark-disable
            _MEDIANS[group][candidate] = benchmark.stats.stats.median

    return run


@pytest.fixture(scope="session")
def assert_close_outputs():
    """assert_close_outputs(name, ours, ref, tolerance): every tensor of `ours` finite and within
    `tolerance` of the same one of `ref`, relative in norm (a fixture, so the test modules need not
    import this conftest, whose module name the tests' conftest also has)."""
    return _assert_close_outputs


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """||ours - ref|| / ||ref||, in float64."""
    ours, ref = ours.detach().double(), ref.detach().double()
    return ((ours - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def _assert_close_outputs(name: str, ours, ref, tolerance: float) -> None:
    ours = ours if isinstance(ours, (tuple, list)) else (ours,)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    assert len(ours) == len(ref)
    for index, (a, b) in enumerate(zip(ours, ref)):
        assert a.shape == b.shape, f"{name}: output {index} has shape {tuple(a.shape)}, the reference's {tuple(b.shape)}"
        assert torch.isfinite(a).all(), f"{name}: output {index} is not finite"
        error = relative_error(a, b)
        assert error <= tolerance, f"{name}: output {index} relative error {error:.2e} > {tolerance:.0e}"


# ---- summary: the ratios, in the terminal and in the JSON ---------------------------------------


def _ratios() -> Dict[str, dict]:
    out = {}
    for group, medians in _MEDIANS.items():
        if "fused" not in medians:
            continue
        fused = medians["fused"]
        entry = {"fused_median_ms": 1e3 * fused}
        for candidate, median in medians.items():
            if candidate != "fused":
                entry[f"speedup_vs_{candidate}"] = median / fused
        if group in _FLOORS:
            entry["memory_floor_ms"] = 1e3 * _FLOORS[group]
            entry["fused_over_floor"] = fused / _FLOORS[group]
        out[group] = entry
    return out


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info["infaug"] = {name: common.environment(torch.device(name)) for name in devices(config)
                              if name == "cpu" or torch.cuda.is_available()}


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    if not config.getoption("--bench-keep-data"):
        for entry in output_json.get("benchmarks", []):
            entry.get("stats", {}).pop("data", None)  # the statistics computed from it stay
    output_json["infaug"] = {
        "ratio": "median of each candidate over the fused op's median in the same group (speedup_vs_<candidate>)",
        "quick": config.getoption("--bench-quick"),
        "groups": _ratios(),
    }


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter) -> None:
    ratios = _ratios()
    if not ratios:
        return
    terminalreporter.write_sep("-", "infaug: speed-ups of the fused op (median of the other candidate / median of fused)")
    for group, entry in ratios.items():
        cells = [f"fused {entry['fused_median_ms']:.3f} ms"]
        cells += [f"x{v:.2f} vs {k[len('speedup_vs_'):]}" for k, v in entry.items() if k.startswith("speedup_vs_")]
        if "fused_over_floor" in entry:
            cells.append(f"{entry['fused_over_floor']:.1f}x the memory floor ({entry['memory_floor_ms']:.4f} ms)")
        terminalreporter.write_line(f"{group}: " + ", ".join(cells))


def pytest_report_header(config: pytest.Config) -> str:
    env = common.environment(torch.device("cpu"))
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"infaug benchmarks: torch {env['torch']}, CPU capability {env['cpu_capability']}, {env['threads']} threads"
            f"{gpu}; devices {', '.join(devices(config))}{'; quick sizes' if config.getoption('--bench-quick') else ''}")

