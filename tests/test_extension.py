"""The build of the extension at first import survives being killed: the folder's lock dies with
its holder, an unfinished build is cleared and built again rather than loaded, and an import that
waits on a live build says so. The fast tests drive ``build_once`` with a stand-in build; the last
one compiles the real extension, kills the build half-way and imports again."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

from infaug import _extension
from infaug._extension import DONE, LOCK, build_once

ROOT = Path(__file__).resolve().parents[1]


class FakeBuild:
    """Writes ``_C.so`` into the folder (as a build would) and counts its calls."""

    def __init__(self, directory: Path, payload: bytes = b"\x7fELF linked"):
        self.directory, self.payload, self.calls = directory, payload, 0

    def __call__(self) -> ModuleType:
        self.calls += 1
        library = self.directory / "_C.so"
        if not library.exists():
            library.write_bytes(self.payload)
        return ModuleType("_C")


def test_a_fresh_folder_is_built_once_and_then_loaded_silently(tmp_path, capsys):
    build = FakeBuild(tmp_path)
    build_once(tmp_path, build)
    first = capsys.readouterr().err
    assert f"compiling its operators (once; cached in {tmp_path}" in first and "compiled in" in first
    assert (tmp_path / DONE).read_text() == f"_C.so {len(build.payload)} {hashlib.sha256(build.payload).hexdigest()}\n"
    (tmp_path / "kept.o").write_bytes(b"object")  # a finished build's files stay where they are
    build_once(tmp_path, build)
    assert capsys.readouterr().err == ""
    assert build.calls == 2 and (tmp_path / "kept.o").exists()


def test_a_killed_builds_leftovers_are_cleared_not_loaded(tmp_path, capsys):
    # what a build killed half-way leaves: torch's lock file, some objects, a library never linked
    (tmp_path / "lock").touch()
    (tmp_path / "warp.o").write_bytes(b"half an obj")
    (tmp_path / "_C.so").write_bytes(b"")
    (tmp_path / "build.ninja").write_text("rule cxx\n")
    build = FakeBuild(tmp_path)
    build_once(tmp_path, build)
    err = capsys.readouterr().err
    assert f"{tmp_path} holds an unfinished build (killed, or interrupted while linking); clearing it and building again" in err
    assert not (tmp_path / "lock").exists() and not (tmp_path / "warp.o").exists()
    assert (tmp_path / "_C.so").read_bytes() == build.payload and build.calls == 1


@pytest.mark.parametrize("damage", ["truncated", "altered", "record cut"])
def test_a_library_that_changed_since_it_was_linked_is_rebuilt(tmp_path, capsys, damage):
    build = FakeBuild(tmp_path)
    build_once(tmp_path, build)
    if damage == "truncated":
        (tmp_path / "_C.so").write_bytes(build.payload[:4])
    elif damage == "altered":  # the same size, one byte changed: a library that could crash on load
        (tmp_path / "_C.so").write_bytes(build.payload[:-1] + b"?")
    else:
        (tmp_path / DONE).write_text((tmp_path / DONE).read_text()[:10])
    capsys.readouterr()
    build_once(tmp_path, build)
    assert "holds an unfinished build" in capsys.readouterr().err
    assert (tmp_path / "_C.so").read_bytes() == build.payload


def test_a_finished_build_that_does_not_load_is_built_again(tmp_path, capsys):
    build = FakeBuild(tmp_path)
    build_once(tmp_path, build)
    capsys.readouterr()
    attempts = []

    def damaged_then_fine() -> ModuleType:
        attempts.append(1)
        if len(attempts) == 1:
            raise ImportError(f"{tmp_path / '_C.so'}: invalid ELF header")
        return build()

    build_once(tmp_path, damaged_then_fine)
    err = capsys.readouterr().err
    assert f"the build cached in {tmp_path} does not load" in err and "invalid ELF header" in err
    assert "compiling its operators" in err and len(attempts) == 2


def test_torchs_lock_left_beside_a_finished_build_is_removed(tmp_path, capsys):
    build = FakeBuild(tmp_path)
    build_once(tmp_path, build)
    (tmp_path / "lock").touch()  # a process killed while torch loaded the finished build
    capsys.readouterr()
    build_once(tmp_path, build)
    assert f"removing a stale lock file left in {tmp_path} by a process that was killed" in capsys.readouterr().err
    assert not (tmp_path / "lock").exists()


def _holder(directory: Path, seconds: float) -> subprocess.Popen:
    """A process that takes the folder's build lock, says so, and holds it for ``seconds``."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from infaug._extension import build_lock
        with build_lock(Path({str(directory)!r})):
            print("held", flush=True)
            time.sleep({seconds})
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout.readline().strip() == "held"
    return process


def test_an_import_waiting_on_a_live_build_says_so_and_goes_on_when_it_ends(tmp_path, capsys):
    holder = _holder(tmp_path, 1.5)
    start = time.perf_counter()
    build_once(tmp_path, FakeBuild(tmp_path))
    waited = time.perf_counter() - start
    holder.wait(timeout=300)
    err = capsys.readouterr().err
    assert f"waiting for another process (pid {holder.pid}) that is compiling or loading infaug's operators in {tmp_path}" in err
    assert waited > 0.5 and "the other process finished after" in err


def test_the_lock_of_a_killed_holder_does_not_block(tmp_path, capsys):
    holder = _holder(tmp_path, 600)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=300)
    assert (tmp_path / LOCK).exists()  # the file stays; the kernel dropped the lock with its holder
    start = time.perf_counter()
    build_once(tmp_path, FakeBuild(tmp_path))
    assert time.perf_counter() - start < 10
    assert "waiting" not in capsys.readouterr().err


_IMPORT = textwrap.dedent("""
    import torch
    from infaug import _extension
    _extension.compile_for_runtime()
    import infaug
    from infaug.reference import warp
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    theta_w = torch.eye(2, dtype=torch.float64).reshape(1, 4, 1, 1).expand(2, 4, 8, 8).contiguous()
    theta_b = 0.1 * torch.randn(2, 2, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(infaug.warp(x, theta_w, theta_b), warp(x, theta_w, theta_b))
    print("works", flush=True)
""")


def _first_import(directory: Path) -> subprocess.Popen:
    env = dict(os.environ, INFAUG_EXTENSION_DIR=str(directory))
    return subprocess.Popen([sys.executable, "-c", _IMPORT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env, start_new_session=True)


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.2)


def test_a_first_import_killed_while_compiling_leaves_the_next_one_working(tmp_path):
    """The real build: a first import compiles into a fresh INFAUG_EXTENSION_DIR; a second import,
    started meanwhile, waits and says so; the first is SIGKILLed (with its ninja and compilers)
    while it compiles; the second clears what it left, builds, and works; a third loads silently."""
    cache = tmp_path / "extensions"
    first = _first_import(cache)
    folder = lambda: next(iter(cache.glob("torch-*")), None)  # noqa: E731
    _wait_for(lambda: folder() is not None and (folder() / "build.ninja").exists(), 120, "the first build to start ninja")
    second = _first_import(cache)
    time.sleep(10)  # both live: the second waits on the first's lock while the compilers run
    assert first.poll() is None, "the first build ended before it could be killed; the test needs it half-way"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    out, err = second.communicate(timeout=900)
    assert second.returncode == 0, err
    assert out.strip() == "works"
    assert f"waiting for another process (pid {first.pid})" in err
    assert "holds an unfinished build (killed, or interrupted while linking); clearing it and building again" in err
    assert "compiled in" in err
    third = _first_import(cache)
    out, err = third.communicate(timeout=300)
    assert third.returncode == 0 and out.strip() == "works"
    assert err == "", err
