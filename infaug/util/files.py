"""Files infaug writes and reads back, checked: a damaged file fails with its name and what is wrong.

:class:`CorruptFileError` (a ``ValueError``) is what every reader raises for a file that is
truncated, altered or no file of the kind expected, with the path first in its message.
:func:`save_checked` writes a torch file (a checkpoint, an ``Augmenter``) with the SHA-256 of its
contents inside it, and :func:`load_checked` verifies it, so bytes altered in a tensor, which
``torch.load`` reads back without complaint, are caught; a file written before the checksum was
added loads unchecked. :func:`with_digest` and :func:`read_json` do the same for the JSON files a
run writes (``metrics.json``, ``config.json``), where a changed digit would otherwise read as
another number.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "state.pt"
    >>> save_checked({"step": 3, "weight": torch.ones(2)}, path)
    >>> load_checked(path)["step"]
    3
    >>> _ = path.write_bytes(path.read_bytes()[:100])
    >>> load_checked(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    infaug.util.files.CorruptFileError: .../state.pt: not a readable torch file (truncated or damaged: ...)
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CorruptFileError", "contents_digest", "load_checked", "read_json", "save_checked", "with_digest"]

DIGEST_KEY = "sha256"  # the key of the checksum inside a saved dict


class CorruptFileError(ValueError):
    """A file that is truncated, altered or unreadable; the message names the file and what is wrong."""


def _update(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {data.dtype} {tuple(value.shape)}:".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}:".encode())
        for key, item in value.items():
            digest.update(repr(key).encode())
            _update(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)}:".encode())
        for item in value:
            _update(digest, item)
    else:
        digest.update(f"{type(value).__name__} {value!r};".encode())


def contents_digest(state: dict) -> str:
    """The SHA-256 of a nested state's values (tensors by dtype, shape and bytes; the rest by repr)."""
    digest = hashlib.sha256()
    _update(digest, {key: value for key, value in state.items() if key != DIGEST_KEY})
    return digest.hexdigest()


def save_checked(state: dict, path: str | Path) -> None:
    """``torch.save`` of ``state`` with its :func:`contents_digest` under ``"sha256"``."""
    torch.save(dict(state, **{DIGEST_KEY: contents_digest(state)}), path)


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__


def load_checked(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, verified against the checksum saved inside it.

    Raises :class:`CorruptFileError` naming ``path`` when it cannot be read as a torch file or its
    contents differ from what was saved; ``FileNotFoundError`` when it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile, KeyError, IndexError) as error:
        raise CorruptFileError(f"{path}: not a readable torch file (truncated or damaged: {_reason(error)})") from None
    if isinstance(state, dict) and DIGEST_KEY in state:
        saved = state.pop(DIGEST_KEY)
        actual = contents_digest(state)
        if actual != saved:
            raise CorruptFileError(f"{path}: its contents differ from those it was saved with (SHA-256 {actual}, "
                                   f"saved {saved}): the file was altered or damaged after it was written")
    return state


def _json_digest(value: dict) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def with_digest(value: dict) -> dict:
    """``value`` with the SHA-256 of its canonical JSON under ``"sha256"`` (checked by :func:`read_json`)."""
    rest = {key: item for key, item in value.items() if key != DIGEST_KEY}
    return dict(rest, **{DIGEST_KEY: _json_digest(rest)})


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The JSON value in ``path``, without its checksum after checking it (where it has one).

    :class:`CorruptFileError` naming the file and the line and column where it is not JSON (a file
    cut short ends mid-value), or saying that its contents differ from its checksum;
    ``FileNotFoundError`` when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CorruptFileError(f"{path}: not a valid {what} (not UTF-8 text at byte {error.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        cut = " (the file ends mid-value: truncated?)" if error.pos >= len(text.rstrip()) else ""
        raise CorruptFileError(f"{path}: not a valid {what}: {error.msg} at line {error.lineno}, column {error.colno}{cut}") from None
    if isinstance(value, dict) and DIGEST_KEY in value:
        saved = value.pop(DIGEST_KEY)
        if _json_digest(value) != saved:
            raise CorruptFileError(f"{path}: its contents differ from the checksum written with them (SHA-256 {saved}): "
                                   f"the file was altered or damaged after infaug wrote it")
    return value
