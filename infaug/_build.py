"""How infaug's compiled operators are built: one list of sources and flags, used by ``setup.py``
(``pip install --no-build-isolation .``) and by the build at first import (``infaug._extension``,
after a ``pip install .`` whose isolated build had no torch), so both make the same extension.

This module imports nothing from infaug (setup.py loads it by path) and torch only when called.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

__all__ = ["DEFAULT_CUDA_ARCHS", "LINK_FLAGS", "cxx_flags", "env_flag", "nvcc_flags", "source_root", "sources"]

# Compute capabilities compiled for when no GPU is visible and TORCH_CUDA_ARCH_LIST is unset (A100,
# H100/H200, and PTX that newer GPUs compile at load time). Without a default, torch's cpp_extension
# finds no architecture and fails with an IndexError.
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"
# at::parallel_for only runs in parallel when the caller is compiled with OpenMP; link the same
# libgomp that torch loads (its soname matches, so one runtime serves both).
LINK_FLAGS = ["-fopenmp"]


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` (INFAUG_FORCE_CPU, FORCE_CUDA) is set to 1, true,
    yes or on (any case, surrounding spaces ignored); unset counts as off."""
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def source_root() -> Path:
    """The C++/CUDA sources: ``infaug/_csrc`` in an installed wheel, ``csrc`` in a source tree."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_csrc", package.parent / "csrc"):
        if (candidate / "infaug.cpp").exists():
            return candidate
    raise FileNotFoundError(f"infaug's C++ sources were found neither in {package / '_csrc'} nor in {package.parent / 'csrc'}")


def sources(root: Path, with_cuda: bool) -> list[str]:
    files = sorted(glob.glob(os.path.join(root, "*.cpp")) + glob.glob(os.path.join(root, "cpu", "*.cpp")))
    if with_cuda:
        files += sorted(glob.glob(os.path.join(root, "cuda", "*.cu")))
    return files


def _defines(torch_version: str, with_cuda: bool, shell: bool) -> list[str]:
    # The version string lets `import infaug` refuse an extension built against another torch.
    version = f'-DINFAUG_TORCH_VERSION="{torch_version}"'
    # The build at import goes through ninja and a shell, which would strip the double quotes.
    defines = [f"'{version}'" if shell else version]
    return defines + (["-DINFAUG_WITH_CUDA"] if with_cuda else [])


def cxx_flags(torch_version: str, with_cuda: bool, *, shell: bool = False) -> list[str]:
    return ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"] + _defines(torch_version, with_cuda, shell)


def nvcc_flags(torch_version: str, *, shell: bool = False) -> list[str]:
    return ["-O3", "-lineinfo"] + _defines(torch_version, True, shell)
