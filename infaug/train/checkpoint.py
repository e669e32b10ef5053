"""Checkpoints that survive a killed run, and the guard that keeps non-finite values out of them.

A run's checkpoints sit in ``OUT/checkpoints/``, one file per phase (``seed0-G.pt``,
``seed0-proposed.pt``, ...), each written atomically (:func:`infaug.util.atomic.atomic_write`: a
temporary file, flushed and renamed), so a file under a checkpoint's name is always whole. A phase
saves at its end and, inside long phases (G's steps, F's epochs), whenever ``every`` seconds have
passed since its last save (``every = 0``: at every step or epoch). Before anything is written,
every tensor of the state is checked: a NaN or an infinity is never saved. Each file carries the
SHA-256 of its contents (:func:`infaug.util.files.save_checked`), so one damaged later (a
truncated copy, a flipped byte) is refused with its name
(:class:`~infaug.util.files.CorruptFileError`) rather than resumed from.

Under torchrun every rank calls ``save`` at the same points (the state may gather values from all
ranks); rank 0 decides from its clock whether a throttled save is due, for all of them, and only
rank 0 writes. Every rank loads the same file when a run resumes.

Example:
    >>> import tempfile, torch
    >>> checkpoints = Checkpoints(tempfile.mkdtemp(), every=0)
    >>> phase = checkpoints.phase("seed0-none")
    >>> phase.load() is None
    True
    >>> phase.save(lambda: {"step": 3, "weight": torch.ones(2)}, note="step 3")
    True
    >>> phase.load()["step"], checkpoints.newest()[1]
    (3, 'seed0-none, step 3')
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
from torch import Tensor

from infaug import distributed
from infaug.util.atomic import atomic_write
from infaug.util.files import load_checked, save_checked

__all__ = ["Checkpoints", "NonFiniteError", "Phase", "check_step", "rng_states", "set_rng_states"]


class NonFiniteError(FloatingPointError):
    """A loss, a gradient or a value about to be checkpointed is NaN or infinite. ``phase`` and
    ``step`` say where; the run adds the last good checkpoint to the message."""

    def __init__(self, message: str, *, phase: str, step: Optional[int] = None) -> None:
        super().__init__(message)
        self.phase, self.step = phase, step


def check_step(phase: str, step: int, loss: Tensor, parameters: Iterable[Tensor] = ()) -> float:
    """The loss as a float, after checking that it and every gradient of ``parameters`` are finite
    (one device sync, which reading the loss costs anyway); raises :class:`NonFiniteError`."""
    grads = [p.grad for p in parameters if p.grad is not None]
    values = [loss.detach().reshape(1).float()]
    if grads:
        values.append(torch.stack(torch._foreach_norm(grads)).float())
    values = torch.cat(values)
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        what = f"loss ({float(values[0])})" if not bool(finite[0]) else f"gradient (norm {float(values[~finite][0])})"
        raise NonFiniteError(f"non-finite {what} in {phase} at step {step}", phase=phase, step=step)
    return float(values[0])


def rng_states(**generators: torch.Generator) -> dict:
    """The states of ``generators`` and of torch's global generators (CPU and, where present, CUDA)."""
    states = {name: g.get_state() for name, g in generators.items()}
    states["torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict, **generators: torch.Generator) -> None:
    for name, g in generators.items():
        g.set_state(states[name])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _non_finite(value, path: str = "") -> Optional[str]:
    """The path of the first non-finite floating-point value in a nested state, or None."""
    if isinstance(value, Tensor):
        return path if value.is_floating_point() and not bool(torch.isfinite(value).all()) else None
    if isinstance(value, float):
        return path if value != value or value in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


class Checkpoints:
    """The checkpoint folder of a run; ``None`` as the folder turns every checkpoint off."""

    def __init__(self, directory: str | Path | None, *, every: float = 60.0) -> None:
        self.directory = None if directory is None else Path(directory)
        self.every = every

    def phase(self, key: str) -> "Phase":
        return Phase(self, key)

    def clean(self) -> None:
        """Removes temporary files a killed run left behind (never a finished checkpoint)."""
        if self.directory is not None and self.directory.exists():
            for stale in self.directory.glob("*.tmp"):
                stale.unlink()

    def verify(self) -> None:
        """Reads every checkpoint and checks it against its checksum; raises
        :class:`~infaug.util.files.CorruptFileError` naming the first damaged one."""
        if self.directory is None or not self.directory.exists():
            return
        for path in sorted(self.directory.glob("*.pt")):
            self.phase(path.stem).load()

    def has_any(self) -> bool:
        return self.directory is not None and any(self.directory.glob("*.pt"))

    def newest(self) -> Optional[tuple[Path, str]]:
        """(file, what it holds) of the most recently written checkpoint, or None."""
        files = sorted(self.directory.glob("*.pt"), key=lambda f: f.stat().st_mtime) if self.directory is not None and self.directory.exists() else []
        if not files:
            return None
        try:
            note = load_checked(files[-1]).get("note", "")
        except ValueError:  # damaged: still the newest file, named without its note
            note = "unreadable"
        return files[-1], f"{files[-1].stem}, {note}" if note else files[-1].stem


class Phase:
    """One phase's checkpoint file: ``load`` what was saved, ``save`` (throttled unless forced).
    It also keeps the phase's clock: ``elapsed()`` counts from its creation plus the seconds of
    the runs before (saved with every state as ``"seconds"``)."""

    def __init__(self, checkpoints: Checkpoints, key: str) -> None:
        self.checkpoints, self.key = checkpoints, key
        self.path = None if checkpoints.directory is None else checkpoints.directory / f"{key}.pt"
        self._saved_at = time.monotonic()
        self._start, self._before = time.perf_counter(), 0.0

    def load(self) -> Optional[dict]:
        if self.path is None or not self.path.exists():
            return None
        try:
            state = load_checked(self.path)
        except ValueError as error:
            raise type(error)(f"{error}; delete it and `infaug run --resume` does this phase ({self.key}) again "
                              "from its start") from None
        self._start, self._before = time.perf_counter(), float(state.get("seconds", 0.0))
        return state

    def elapsed(self) -> float:
        return self._before + time.perf_counter() - self._start

    def save(self, state: Callable[[], dict], *, force: bool = True, note: str = "") -> bool:
        """Writes ``state()`` when forced or when ``every`` seconds have passed; True if written."""
        if self.path is None:
            return False
        now = time.monotonic()
        if not force and not distributed.agree(now - self._saved_at >= self.checkpoints.every):
            return False
        value = dict(state(), seconds=self.elapsed(), note=note)
        bad = _non_finite(value)
        if bad is not None:
            raise NonFiniteError(f"{self.key}: {bad} is not finite; the checkpoint was not written", phase=self.key)
        if distributed.is_main():
            atomic_write(self.path, lambda temporary: save_checked(value, temporary))
        self._saved_at = now
        return True
