"""Shared fixtures: the devices and dtypes every op is tested on, and the data directory."""

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
