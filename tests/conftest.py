"""Shared fixtures: the devices and dtypes every op is tested on, the data directory, and a runner
for the generic (non-AVX2) code paths; and helpers that several test files import from here (IDX
files of random images, a small F with BatchNorm)."""

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import infaug  # noqa: F401  (registers torch.ops.infaug)
from infaug.models import AllConvNet

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


def idx_bytes(array: np.ndarray, shape=None) -> bytes:
    """An IDX file of uint8 ``array``; ``shape`` overrides the header's shape."""
    shape = array.shape if shape is None else shape
    return bytes([0, 0, 0x08, len(shape)]) + b"".join(int(s).to_bytes(4, "big") for s in shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True, shape=None) -> Path:
    """Writes ``idx_bytes(array, shape)`` to ``path``, gzip-compressed when ``gz``; returns ``path``."""
    data = idx_bytes(array, shape)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def tiny_dataset(root: Path, folder: str = "FashionMNIST", *, n: int = 20, size=(28, 28), gz: bool = False, seed: int = 0) -> dict:
    """Writes train and t10k files of ``n`` random images into ``root/folder/raw``; returns
    {split: (images, labels)} as written."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    written = {}
    for split, prefix in [("train", "train"), ("test", "t10k")]:
        images = rng.integers(0, 256, size=(n,) + size, dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=gz)
        written[split] = (images, labels)
    return written


def small_net() -> torch.nn.Module:
    """A float64 AllConvNet (1 channel, 3 classes, width 2) in training mode whose BatchNorm running
    statistics are not the identity: code that must evaluate F in eval mode, and restore its mode,
    is seen to do both."""
    torch.manual_seed(0)
    net = AllConvNet(in_channels=1, num_classes=3, width=2).double()
    net.train()
    with torch.no_grad():
        net(torch.rand(16, 1, 8, 8, dtype=torch.float64))
    return net
