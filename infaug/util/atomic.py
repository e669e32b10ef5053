"""Files written whole or not at all: a temporary file beside the target, flushed to disk, then
renamed onto it (``os.replace`` is atomic), so a reader or a killed run never sees half a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write"]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Calls ``write(temporary)``, syncs the temporary file and moves it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        write(temporary)
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
