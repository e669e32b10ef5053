"""Loads infaug's compiled operators, or compiles them once against the torch that runs.

``pip install --no-build-isolation .`` compiles the extension at install time (``infaug/_C*.so``).
A plain ``pip install .`` builds in an isolated environment without torch, so the wheel carries the
sources instead (``infaug/_csrc``), and the first import compiles them with torch's
``cpp_extension`` (ninja) into a cache folder keyed by the torch version and the sources' hash:
``$INFAUG_EXTENSION_DIR``, else ``$XDG_CACHE_HOME/infaug/extensions`` (``~/.cache/...``). Later
imports load the cached build; a new torch or changed sources build anew, once.

A build can be killed (a closed terminal, a time limit, the out-of-memory killer), so the folder is
guarded by an advisory lock (``flock``) that the kernel releases when its holder dies, and a build
counts only once ``infaug-build.done`` records the library it linked (its size and SHA-256, so a
library damaged later is built again rather than loaded). An import that finds the
lock held by a live process says so and waits; one that finds a build without that record (a
killed build's objects, or a lock file torch's own ``cpp_extension`` left behind) clears the folder
and builds again rather than loading it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Iterator
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

    def build() -> ModuleType:
        # torch skips the build step for a name it already built in this process: forget it, so that
        # a second call (after a cached build that would not load was cleared) compiles again
        versions = getattr(cpp_extension, "JIT_EXTENSION_VERSIONER", None)
        if versions is not None:
            versions.entries.pop("_C", None)
        return cpp_extension.load(
            name="_C", sources=sources, build_directory=str(directory), with_cuda=with_cuda,
            extra_cflags=_build.cxx_flags(torch.__version__, with_cuda, shell=True),
            extra_cuda_cflags=_build.nvcc_flags(torch.__version__, shell=True) if with_cuda else None,
            extra_ldflags=_build.LINK_FLAGS, verbose=False,
        )

    try:
        module = build_once(directory, build, what=f"its C++{'/CUDA' if with_cuda else ''} operators for torch {torch.__version__}")
    except (RuntimeError, OSError, ImportError) as error:
        raise ImportError(f"infaug could not compile its extension for torch {torch.__version__} in {directory}: {error}. "
                          f"It needs a C++ compiler and ninja (`pip install ninja`). {_BUILD_HINT}") from error
    sys.modules["infaug._C"] = module
    return module


LOCK = "infaug-build.lock"  # flock'd by the process that builds or loads; its pid inside
DONE = "infaug-build.done"  # written after a build links and loads: the library's name, size and SHA-256


def _say(message: str) -> None:
    print(f"infaug: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Holds ``directory``'s build lock: an exclusive ``flock`` on ``LOCK``, which the kernel drops
    when the holder exits or is killed, so a dead builder never blocks the next. While another
    live process holds it, says so (with its pid and the folder) and waits."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): torch's own lock file is all there is
        yield
        return
    with open(directory / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            _say(f"waiting for another process (pid {owner}) that is compiling or loading infaug's operators in {directory}")
            start = time.perf_counter()
            fcntl.flock(handle, fcntl.LOCK_EX)
            _say(f"the other process finished after {time.perf_counter() - start:.0f} s")
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield  # closing the file releases the lock


def _libraries(directory: Path) -> list:
    return sorted(directory.glob("_C*.so")) + sorted(directory.glob("_C*.pyd"))


def _record(directory: Path) -> str:
    """What ``DONE`` holds for the build in ``directory``: each library's name, size and SHA-256."""
    return "".join(f"{path.name} {path.stat().st_size} {hashlib.sha256(path.read_bytes()).hexdigest()}\n"
                   for path in _libraries(directory))


def _clear(directory: Path) -> None:
    for path in directory.iterdir():
        if path.name == LOCK:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def build_once(directory: Path, build: Callable[[], ModuleType], what: str = "its operators") -> ModuleType:
    """Runs ``build`` (which compiles into ``directory`` where needed, then loads the library)
    under :func:`build_lock`. A folder without a finished build's record is cleared first, and so is
    a finished build that no longer loads (a damaged library); a finished build is loaded as it is
    (``build`` finds nothing to compile)."""
    with build_lock(directory):
        done = directory / DONE
        finished = done.is_file() and bool(_libraries(directory)) and done.read_text() == _record(directory)
        if finished:
            if (directory / "lock").exists():
                # torch's cpp_extension lock, left by a process killed while it loaded this build:
                # this process holds the folder's flock, so no live process owns it
                _say(f"removing a stale lock file left in {directory} by a process that was killed")
                (directory / "lock").unlink()
            try:
                return build()
            except (ImportError, OSError) as error:
                _say(f"the build cached in {directory} does not load ({error}); clearing it and building again")
        elif any(path.name != LOCK for path in directory.iterdir()):
            _say(f"{directory} holds an unfinished build (killed, or interrupted while linking); clearing it and building again")
        _clear(directory)
        _say(f"compiling {what} (once; cached in {directory}; a minute or two)")
        start = time.perf_counter()
        module = build()
        done.write_text(_record(directory))
        _say(f"compiled in {time.perf_counter() - start:.0f} s")
        return module
