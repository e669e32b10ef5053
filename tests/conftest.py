"""Shared fixtures: the devices and dtypes every op is tested on, the data directory, and a runner
for the generic (non-AVX2) code paths."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import infaug  # noqa: F401  (registers torch.ops.infaug)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.fixture(scope="session")
def mnist_or_embedded():
    """Real MNIST training digits from ../shared/data when present, else the embedded 5000."""
    from infaug.data import embedded_digits, load_mnist

    if (DATA_DIR / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists():
        return load_mnist(DATA_DIR, "train")
    return embedded_digits()


@pytest.fixture
def generic_and_native(tmp_path):
    """run(code) executes `code` (which saves a list of tensors to sys.argv[1]) in two fresh
    processes, one with ATEN_CPU_CAPABILITY=default (the portable kernels) and one without (the
    AVX2 kernels where the CPU has them), and returns the two lists (generic, native)."""

    def run(code: str):
        results = []
        for capability in ["default", None]:
            env = dict(os.environ)
            env.pop("ATEN_CPU_CAPABILITY", None)
            if capability:
                env["ATEN_CPU_CAPABILITY"] = capability
            path = tmp_path / f"capability-{capability}.pt"
            subprocess.run([sys.executable, "-c", code, str(path)], env=env, check=True)
            results.append(torch.load(path))
        return results

    return run
