"""Progress bars on the long loops: tqdm on a terminal, silent otherwise (logs, CI, tests)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled() -> bool:
    if os.environ.get("INFAUG_PROGRESS") in ("0", "1"):
        return os.environ["INFAUG_PROGRESS"] == "1"
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], **options) -> Iterable[T]:
    return tqdm(iterable, disable=not enabled(), leave=False, dynamic_ncols=True, **options)
