"""Loads infaug's compiled operators, or compiles them once against the torch that runs.

``pip install --no-build-isolation .`` compiles the extension at install time (``infaug/_C*.so``).
A plain ``pip install .`` builds in an isolated environment without torch, so the wheel carries the
sources instead (``infaug/_csrc``), and the first import compiles them with torch's
``cpp_extension`` (ninja) into a cache folder keyed by the torch version and the sources' hash:
``$INFAUG_EXTENSION_DIR``, else ``$XDG_CACHE_HOME/infaug/extensions`` (``~/.cache/...``). Later
imports load the cached build; a new torch or changed sources build anew, once.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

from infaug import _build

_BUILD_HINT = (
    "Build it against the installed torch from the infaug source tree with "
    "`pip install --no-build-isolation .` (or `pip install --no-build-isolation -e .` to develop)."
)


def load() -> ModuleType:
    """Imports ``infaug._C``, which registers the ``torch.ops.infaug`` operators."""
    try:
        _C = importlib.import_module("infaug._C")  # the submodule itself, not the package's lazy attribute
    except ImportError as error:  # none installed (a plain `pip install .`), or one that cannot load here
        return compile_for_runtime(reason=str(error))
    if _C.torch_version != torch.__version__:
        raise ImportError(
            f"infaug's compiled extension was built for torch {_C.torch_version}, but torch "
            f"{torch.__version__} is installed. {_BUILD_HINT}"
        )
    return _C


def cache_dir() -> Path:
    base = os.environ.get("INFAUG_EXTENSION_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "infaug" / "extensions"


def compile_for_runtime(reason: str = "") -> ModuleType:
    """Compiles (or loads the cached build of) the extension for the running torch."""
    from torch.utils import cpp_extension

    try:
        root = _build.source_root()
    except FileNotFoundError as error:
        raise ImportError(f"infaug's compiled extension could not be loaded ({reason}) and {error}. {_BUILD_HINT}") from None
    forced_cpu = _build.env_flag("INFAUG_FORCE_CPU")
    with_cuda = not forced_cpu and torch.version.cuda is not None and torch.cuda.is_available() and cpp_extension.CUDA_HOME is not None
    sources = _build.sources(root, with_cuda)
    digest = hashlib.sha256(f"{torch.__version__} {with_cuda}".encode())
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    directory = cache_dir() / f"torch-{torch.__version__}-{'cuda' if with_cuda else 'cpu'}-{digest.hexdigest()[:16]}"
    directory.mkdir(parents=True, exist_ok=True)
    fresh = not any(directory.glob("_C*.so"))
    if fresh:
        print(f"infaug: compiling its C++{'/CUDA' if with_cuda else ''} operators for torch {torch.__version__} "
              f"(once; cached in {directory}; a minute or two)", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        module = cpp_extension.load(
            name="_C", sources=sources, build_directory=str(directory), with_cuda=with_cuda,
            extra_cflags=_build.cxx_flags(torch.__version__, with_cuda, shell=True),
            extra_cuda_cflags=_build.nvcc_flags(torch.__version__, shell=True) if with_cuda else None,
            extra_ldflags=_build.LINK_FLAGS, verbose=False,
        )
    except (RuntimeError, OSError) as error:
        raise ImportError(f"infaug could not compile its extension for torch {torch.__version__} in {directory}: {error}. "
                          f"It needs a C++ compiler and ninja (`pip install ninja`). {_BUILD_HINT}") from error
    if fresh:
        print(f"infaug: compiled in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    sys.modules["infaug._C"] = module
    return module
