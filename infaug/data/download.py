"""Fetching a named dataset's files (``infaug download NAME --data-dir DIR``) into torchvision's layout.

Each file of :data:`infaug.data.sources.SOURCES` [NAME] lands in ``DIR/<folder>/raw/<file>``
(``DIR/MNIST/raw/train-images-idx3-ubyte.gz``), so ``infaug run --data-dir DIR`` and torchvision
both read it. Per file:

* a file already there whose content verifies (the IDX header's dimensions and the SHA-256 of
  its decompressed bytes, :func:`~infaug.data.sources.check_file`) is kept (and said so); one
  that does not is deleted and fetched again;
* otherwise it is downloaded to ``<file>.part``, from each mirror in turn: the ``mirrors`` given
  (``--mirror URL``), then those in the environment variable ``INFAUG_MIRRORS`` (base URLs
  separated by white space), then the dataset's own. A connection dropped half-way is resumed from
  the bytes already in ``.part`` with ``Range: bytes=N-`` (a server that answers 200 instead of
  206 is read from the start; 416 means ``.part`` is already whole), retried ``retries`` times
  per mirror with a short exponential backoff before the next mirror; a ``.part`` left by an
  interrupted run is resumed the same way;
* the finished ``.part`` is checked the same way, by its content, so a mirror that compressed
  the data anew is as good as the official one; it is synced to disk and renamed onto the final
  name (``os.replace``); one that fails is deleted and the next mirror tried, so a corrupt file
  never sits under the final name.

When every mirror fails for a file, :class:`DownloadError` names the file, each URL tried and why
(HTTP status, connection error, what differs in the content: shape, size or SHA-256). Sockets time
out after ``timeout`` seconds (30), so a stalled server cannot hang the download. Progress is a
tqdm bar per file on a terminal (none when stderr is not a terminal or ``INFAUG_PROGRESS=0``).

Example (fetches from the network):
    from infaug.data.download import download
    raw = download("mnist", "data")   # data/MNIST/raw; then: infaug run --data-dir data
"""

from __future__ import annotations

import http.client
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Optional

from infaug.data.sources import SOURCES, CorruptFileError, DataFile, Source, check_file

__all__ = ["DownloadError", "download", "mirror_urls"]

CHUNK = 1 << 16
USER_AGENT = "infaug-download/0.1 (+python urllib)"
# HTTP answers worth asking again (the server may recover); any other error status ends that mirror.
RETRIABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """No mirror gave a good copy of one or more files; the message lists each URL tried and why."""


class _Retry(Exception):
    """This attempt failed in a way that may pass on another try of the same mirror."""


class _GiveUp(Exception):
    """This mirror will not serve the file (e.g. HTTP 404): go on to the next one."""


def _source(name: str | Source) -> Source:
    if isinstance(name, Source):
        return name
    source = SOURCES.get(str(name).lower())
    if source is None:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(SOURCES))}")
    return source


def mirror_urls(source: Source, mirrors: Optional[Iterable[str]] = None, *, official: bool = True) -> list:
    """The base URLs tried for ``source``, in order, without repeats: ``mirrors``, then
    ``INFAUG_MIRRORS`` (white-space separated), then the source's own unless ``official`` is False."""
    candidates = list(mirrors or []) + os.environ.get("INFAUG_MIRRORS", "").split()
    if official:
        candidates += list(source.mirrors)
    seen, urls = set(), []
    for url in candidates:
        url = url.strip()
        if url and url.rstrip("/") not in seen:
            seen.add(url.rstrip("/"))
            urls.append(url)
    return urls


def _file_url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _network_error(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    if isinstance(error, TimeoutError):
        return f"timed out ({error})" if str(error) else "timed out"
    return f"connection error: {type(error).__name__}: {error}" if str(error) else f"connection error: {type(error).__name__}"


def _open(url: str, offset: int, timeout: float, start_over: Callable[[], None]):
    """The response to a request for ``url`` from byte ``offset``, or None when the server has
    nothing past it (HTTP 416: ``.part`` already holds the whole file, which is checked next)."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        request = urllib.request.Request(url, headers=headers)
    except ValueError as error:
        raise _GiveUp(f"bad URL: {error}")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        status, reason = error.code, error.reason
        content_range = (error.headers.get("Content-Range") if error.headers else None) or ""
        error.close()
        if status == 416 and offset:
            # Nothing past byte `offset`: the whole file, or more than the server has.
            match = re.match(r"bytes \*/(\d+)", content_range)
            if match and int(match.group(1)) != offset:
                start_over()
                raise _Retry(f"HTTP 416 for Range bytes={offset}- (the file has {match.group(1)} bytes); starting over")
            return None
        if status in RETRIABLE_STATUS:
            raise _Retry(f"HTTP {status} {reason}")
        raise _GiveUp(f"HTTP {status} {reason}")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        raise _Retry(_network_error(error))


def _copy(response, out, offset: int, length: Optional[int], bar) -> None:
    """Copies the response's body into the open file ``out`` (which holds ``offset`` bytes)."""
    received = 0
    while True:
        try:
            chunk = response.read(CHUNK)
        except (http.client.HTTPException, OSError, ValueError) as error:
            raise _Retry(f"{_network_error(error)} after {offset + received} bytes")
        if not chunk:
            break
        out.write(chunk)  # a local error (disk full) is not the mirror's: it propagates
        received += len(chunk)
        if bar is not None:
            bar.update(len(chunk))
    if length is not None and received < length:
        raise _Retry(f"connection closed after {offset + received} of {offset + length} bytes")


def _attempt(url: str, part: Path, timeout: float, bar, log: Callable[[str], None], state: dict) -> None:
    """One request for ``url`` into ``part``, resuming from its bytes with a Range request. Sets
    ``state["inherited"]`` False when it throws away the bytes ``part`` held before."""

    def start_over() -> None:
        state["inherited"] = False
        part.unlink(missing_ok=True)

    offset = _size(part)
    response = _open(url, offset, timeout, start_over)
    if response is None:
        return
    with response:
        status = getattr(response, "status", None) or 200  # file:// answers have no status
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                start_over()
                raise _Retry(f"asked for bytes {offset}- and got Content-Range {content_range!r}; starting over")
            mode = "ab"
            log(f"{part.name[:-5]}: resuming at byte {offset} from {url}")
        elif status == 200:
            if offset:
                log(f"{part.name[:-5]}: {url} does not resume (HTTP 200 to a Range request); starting over")
                state["inherited"] = False
            mode, offset = "wb", 0
        else:
            raise _GiveUp(f"unexpected HTTP {status} {getattr(response, 'reason', '')}".rstrip())
        if bar is not None:
            bar.reset(total=offset + length if length is not None else None)
            bar.update(offset)
        with open(part, mode) as out:
            _copy(response, out, offset, length, bar)


def _fetch(url: str, part: Path, retries: int, backoff: float, timeout: float, bar, log) -> bool:
    """:func:`_attempt` up to ``1 + retries`` times; raises :class:`_GiveUp` with the last reason.
    Returns whether ``part`` still begins with bytes it held before (from another mirror or run)."""
    state = {"inherited": _size(part) > 0}
    for attempt in range(retries + 1):
        try:
            _attempt(url, part, timeout, bar, log, state)
            return state["inherited"]
        except _Retry as error:
            if attempt == retries:
                tries = f" ({retries + 1} attempts)" if retries else ""
                raise _GiveUp(f"{error}{tries}") from None
            wait = backoff * 2**attempt
            log(f"{part.name[:-5]}: {error}; retrying {url} in {wait:.1f} s")
            if wait > 0:
                time.sleep(wait)
    raise AssertionError("unreachable")


def _problem(error: CorruptFileError, path: Path) -> str:
    """What a failed check found, without the file's name or the advice to fetch it again."""
    message = str(error).split("; delete it")[0]
    return message[len(f"{path}: "):] if message.startswith(f"{path}: ") else message


def _fetch_file(
    file: DataFile, raw: Path, urls: list, *, retries: int, backoff: float, timeout: float, log, bar
) -> list:
    """Fetches ``file`` into ``raw`` from the first of ``urls`` that gives a good copy. Returns []
    on success, else the (url, reason) of each failure."""
    final = raw / file.name
    part = final.with_name(file.name + ".part")
    failures = []
    for base in urls:
        url = _file_url(base, file.name)
        for fresh in (False, True):
            try:
                resumed = _fetch(url, part, retries, backoff, timeout, bar, log)
            except _GiveUp as error:
                failures.append((url, str(error)))
                break
            try:
                check_file(part, file)
            except CorruptFileError as error:
                reason = f"content check failed: {_problem(error, part)}"
                part.unlink()
                if resumed and not fresh:  # the bytes kept from before may be the bad ones
                    failures.append((url, f"{reason} (resumed from an earlier partial download; starting over)"))
                    continue
                failures.append((url, reason))
                break
            with open(part, "rb") as f:
                os.fsync(f.fileno())
            os.replace(part, final)
            _fsync_dir(raw)
            log(f"{file.name}: fetched from {url} ({final.stat().st_size} bytes, content verified)")
            return []
    return failures or [("(no mirror)", "no mirror to try: give one with --mirror URL or INFAUG_MIRRORS")]


def _present(final: Path, file: DataFile, say: Callable[[str], None]) -> bool:
    """True when ``final`` holds a good copy; deletes a corrupt one (to be fetched again)."""
    if not final.exists():
        return False
    try:
        check_file(final, file)
    except CorruptFileError as error:
        say(f"{file.name}: present but fails its check ({_problem(error, final)}); deleting it and fetching it again")
        final.unlink()
        return False
    say(f"{file.name}: already present, content verified; skipped")
    return True


def _failure_report(source: Source, raw: Path, failed: dict) -> str:
    lines = [f"could not fetch {len(failed)} file(s) of {source.name} into {raw}:"]
    for file_name, failures in failed.items():
        partial = raw / (file_name + ".part")
        kept = f"; {_size(partial)} bytes kept in {partial.name}, resumed next time" if _size(partial) else ""
        lines.append(f"  {file_name}: every mirror failed{kept}")
        lines += [f"    {url}: {reason}" for url, reason in failures]
    return "\n".join(lines)


def download(
    name: str | Source,
    data_dir: str | Path,
    *,
    mirrors: Optional[Iterable[str]] = None,
    official: bool = True,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
    log: Optional[Callable[[str], None]] = print,
) -> Path:
    """Fetches dataset ``name`` ("mnist", "fashion-mnist", or a :class:`Source`) into
    ``data_dir/<folder>/raw`` and returns that folder; pass ``data_dir`` to ``infaug run --data-dir``.

    ``mirrors``: base URLs tried before ``INFAUG_MIRRORS`` and the dataset's own mirrors (those
    only when ``official``). ``retries``: further attempts per mirror after a dropped or failed
    connection, each resuming the partial file, waiting ``backoff * 2**k`` seconds before the k-th.
    ``timeout``: seconds a socket may wait. ``log``: where the lines go (``None``: silent).
    Raises :class:`DownloadError` naming each file no mirror gave a good copy of, every URL tried
    and why it failed (the other files are still fetched); ``ValueError`` for an unknown ``name``.
    """
    source = _source(name)
    say = log or (lambda line: None)
    root = Path(data_dir).expanduser()
    raw = root / source.folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    urls = mirror_urls(source, mirrors, official=official)

    from tqdm.auto import tqdm

    from infaug.util.progress import enabled

    failed = {}
    for file in source.files:
        if _present(raw / file.name, file, say):
            continue
        bar = tqdm(
            total=None, desc=file.name, unit="B", unit_scale=True, unit_divisor=1024,
            disable=not enabled(), leave=False, dynamic_ncols=True,
        )
        try:
            failures = _fetch_file(file, raw, urls, retries=retries, backoff=backoff, timeout=timeout, log=say, bar=bar)
        finally:
            bar.close()
        if failures:
            failed[file.name] = failures
    if failed:
        raise DownloadError(_failure_report(source, raw, failed))
    say(f"{source.name} is in {raw.resolve()}; pass --data-dir {root.resolve()} (e.g. infaug run --data-dir {root.resolve()})")
    return raw
