"""infaug.data.download and ``infaug download``, against a local HTTP server on 127.0.0.1 that serves
the real MNIST files and can misbehave on purpose: answer 404, cut a response half-way, ignore
Range, flip bytes. A socket that is bound but not listening stands for a refused connection, one
that listens but never answers for a stalled server."""

import gzip
import hashlib
import re
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infaug.cli import main
from infaug.data.download import DownloadError, download, mirror_urls
from infaug.data.sources import SOURCES, Source

from conftest import DATA_DIR

RAW = DATA_DIR / "MNIST" / "raw"
MD5 = dict(reversed(line.split()) for line in (RAW / "MD5SUMS").read_text().splitlines()) if (RAW / "MD5SUMS").exists() else {}
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

pytestmark = pytest.mark.skipif(len(MD5) != 4, reason=f"the MNIST originals (with MD5SUMS) are not at {RAW}")


def md5sum(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def flipped(data: bytes) -> bytes:
    """The same number of bytes, some of them changed."""
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]


class Server:
    """Serves the files of ``root`` over HTTP with Range support. ``missing``: every answer is 404;
    ``corrupt``: names served with bytes flipped; ``drop``: name -> how many responses to cut after
    half their body (full Content-Length sent); ``ranges=False``: Range is ignored (always 200).
    ``requests`` records (name, Range header) of each request; ``cuts`` the byte each cut was at."""

    def __init__(self, root=RAW, *, missing=False, corrupt=(), drop=None, ranges=True):
        self.root, self.missing, self.corrupt, self.ranges = root, missing, set(corrupt), ranges
        self.drop = dict(drop or {})
        self.requests, self.cuts = [], []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name, wanted = self.path.lstrip("/"), self.headers.get("Range")
                with server.lock:
                    server.requests.append((name, wanted))
                path = server.root / name
                if server.missing or "/" in name or not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                if name in server.corrupt:
                    data = flipped(data)
                start = 0
                if wanted and server.ranges:
                    start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with server.lock:
                    cut = server.drop.get(name, 0) > 0
                    if cut:
                        server.drop[name] -= 1
                        server.cuts.append(start + len(body) // 2)
                if cut:
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True  # the socket closes with the body half sent
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def asked(self, name):
        """The Range headers of the requests for ``name``, in order (None: no Range)."""
        return [wanted for asked, wanted in self.requests if asked == name]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch):
    monkeypatch.delenv("INFAUG_MIRRORS", raising=False)
    monkeypatch.setenv("INFAUG_PROGRESS", "0")


@pytest.fixture
def serve():
    servers = []

    def start(**options):
        servers.append(Server(**options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def refused():
    """A URL whose port is bound but not listening: connecting is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()


def fetch(data_dir, *mirrors, **options):
    """download("mnist") from ``mirrors`` only, without waiting between retries; returns (raw, log)."""
    lines = []
    options = {"official": False, "backoff": 0, "log": lines.append, **options}
    return download(options.pop("name", "mnist"), data_dir, mirrors=list(mirrors), **options), lines


def assert_originals(raw):
    for name, md5 in MD5.items():
        assert md5sum(raw / name) == md5, name
    assert not list(raw.glob("*.part"))


def test_download_mnist_then_nothing_more(tmp_path, serve):
    server = serve()
    raw, lines = fetch(tmp_path, server.url)
    assert raw == tmp_path / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(MD5)
    assert_originals(raw)
    assert sorted(name for name, _ in server.requests) == sorted(MD5)
    assert f"--data-dir {tmp_path.resolve()}" in lines[-1]

    raw, lines = fetch(tmp_path, server.url)  # everything verifies: no request at all
    assert len(server.requests) == 4
    assert sum("already present, content verified" in line for line in lines) == 4

    from infaug.data import load_mnist  # the loader reads the layout as it is

    assert len(load_mnist(tmp_path, "test").labels) == 10000


def test_a_present_file_that_fails_its_check_is_fetched_again(tmp_path, serve):
    server = serve()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MD5:
        shutil.copyfile(RAW / name, raw / name)
    (raw / TEST_LABELS).write_bytes(flipped((RAW / TEST_LABELS).read_bytes()))
    fetch(tmp_path, server.url)
    assert server.requests == [(TEST_LABELS, None)]
    assert_originals(raw)


def test_a_dropped_connection_resumes_with_a_range_request(tmp_path, serve):
    server = serve(drop={TRAIN_IMAGES: 1})
    raw, lines = fetch(tmp_path, server.url, retries=1)
    half = (RAW / TRAIN_IMAGES).stat().st_size // 2
    assert server.cuts == [half]
    assert server.asked(TRAIN_IMAGES) == [None, f"bytes={half}-"]
    assert any(f"resuming at byte {half}" in line for line in lines)
    assert_originals(raw)


def test_a_server_that_ignores_range_is_read_from_the_start(tmp_path, serve):
    server = serve(drop={TRAIN_IMAGES: 1}, ranges=False)
    raw, lines = fetch(tmp_path, server.url, retries=1)
    half = (RAW / TRAIN_IMAGES).stat().st_size // 2
    assert server.asked(TRAIN_IMAGES) == [None, f"bytes={half}-"]  # asked to resume, got 200
    assert any("starting over" in line for line in lines)
    assert_originals(raw)


def test_an_interrupted_download_leaves_a_part_that_the_next_call_resumes(tmp_path, serve):
    server = serve(drop={TRAIN_IMAGES: 1})
    with pytest.raises(DownloadError) as error:
        fetch(tmp_path, server.url, retries=0)
    raw = tmp_path / "MNIST" / "raw"
    half = (RAW / TRAIN_IMAGES).stat().st_size // 2
    message = str(error.value)
    assert TRAIN_IMAGES in message and server.url + TRAIN_IMAGES in message
    assert f"connection closed after {half} of {2 * half} bytes" in message
    assert not (raw / TRAIN_IMAGES).exists()
    assert (raw / (TRAIN_IMAGES + ".part")).stat().st_size == half
    assert all((raw / name).exists() for name in MD5 if name != TRAIN_IMAGES)  # the others are fetched

    before = len(server.requests)
    fetch(tmp_path, server.url, retries=0)
    assert server.requests[before:] == [(TRAIN_IMAGES, f"bytes={half}-")]
    assert_originals(raw)


def test_a_whole_part_is_verified_after_416(tmp_path, serve):
    server = serve()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    shutil.copyfile(RAW / TRAIN_LABELS, raw / (TRAIN_LABELS + ".part"))
    fetch(tmp_path, server.url)
    assert server.asked(TRAIN_LABELS) == [f"bytes={(RAW / TRAIN_LABELS).stat().st_size}-"]
    assert_originals(raw)


def test_a_part_that_is_not_a_prefix_is_fetched_again_whole(tmp_path, serve):
    server = serve()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / (TRAIN_LABELS + ".part")).write_bytes(b"\x00" * 100)  # garbage left by something else
    fetch(tmp_path, server.url)
    assert server.asked(TRAIN_LABELS) == ["bytes=100-", None]
    assert_originals(raw)


def test_a_corrupt_file_fails_naming_it_and_what_is_wrong(tmp_path, serve):
    server = serve(corrupt={TRAIN_LABELS})
    with pytest.raises(DownloadError) as error:
        fetch(tmp_path, server.url)
    message = str(error.value)
    assert TRAIN_LABELS in message
    assert f"{server.url}{TRAIN_LABELS}: content check failed: the gzip data is truncated or corrupt" in message
    raw = tmp_path / "MNIST" / "raw"
    assert not (raw / TRAIN_LABELS).exists() and not (raw / (TRAIN_LABELS + ".part")).exists()


def test_a_mirror_that_compressed_the_data_anew_is_as_good(tmp_path, serve):
    """A mirror's own gzip of the official data (`gzip -n -9`): another file, the same content."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in MD5:
        (mirror / name).write_bytes(gzip.compress(gzip.decompress((RAW / name).read_bytes()), compresslevel=9, mtime=0))
    raw, lines = fetch(tmp_path / "data", serve(root=mirror).url)
    assert all((raw / name).read_bytes() == (mirror / name).read_bytes() for name in MD5)
    assert sum("content verified" in line for line in lines) == 4


def test_a_mirror_with_other_data_fails_naming_both_checksums(tmp_path, serve):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    labels = bytearray(gzip.decompress((RAW / TRAIN_LABELS).read_bytes()))
    labels[100] = (labels[100] + 1) % 10
    (mirror / TRAIN_LABELS).write_bytes(gzip.compress(bytes(labels), mtime=0))
    small = Source("small", "MNIST", (), (SOURCES["mnist"].file(TRAIN_LABELS),))
    with pytest.raises(DownloadError) as error:
        fetch(tmp_path / "data", serve(root=mirror).url, name=small)
    expected = SOURCES["mnist"].file(TRAIN_LABELS).sha256
    assert (f"content check failed: its data differ from the official {TRAIN_LABELS}: SHA-256 of its 60008 decompressed bytes is "
            f"{hashlib.sha256(bytes(labels)).hexdigest()}, expected {expected}") in str(error.value)


def test_a_corrupt_mirror_is_followed_by_a_good_one(tmp_path, serve):
    corrupt, good = serve(corrupt={TRAIN_LABELS}), serve()
    raw, lines = fetch(tmp_path, corrupt.url, good.url)
    assert good.requests == [(TRAIN_LABELS, None)]
    assert any(f"{TRAIN_LABELS}: fetched from {good.url}" in line for line in lines)
    assert_originals(raw)


@pytest.mark.parametrize("first", ["404", "refused"])
def test_a_failing_first_mirror_is_followed_by_the_second(tmp_path, serve, refused, first):
    bad = serve(missing=True).url if first == "404" else refused
    good = serve()
    raw, _ = fetch(tmp_path, bad, good.url, retries=1)
    assert sorted(name for name, _ in good.requests) == sorted(MD5)
    assert_originals(raw)


def test_when_every_mirror_fails_the_error_names_each_and_why(tmp_path, serve, refused):
    missing = serve(missing=True)
    with pytest.raises(DownloadError) as error:
        fetch(tmp_path, missing.url, refused, retries=1)
    message = str(error.value)
    for name in MD5:
        assert f"{missing.url}{name}: HTTP 404" in message
        assert re.search(re.escape(refused + name) + r": connection error: ConnectionRefusedError.*\(2 attempts\)", message)
    assert len(missing.requests) == 4  # a 404 is not retried
    assert not list((tmp_path / "MNIST" / "raw").iterdir())


def test_a_stalled_server_times_out(tmp_path):
    stalled = socket.socket()  # accepts connections (backlog) and never answers
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(8)
    url = f"http://127.0.0.1:{stalled.getsockname()[1]}/"
    small = Source("small", "MNIST", (), (SOURCES["mnist"].file(TEST_LABELS),))
    try:
        with pytest.raises(DownloadError, match="timed out"):
            fetch(tmp_path, url, name=small, retries=0, timeout=0.3)
    finally:
        stalled.close()


def test_mirrors_come_first_then_the_environment_then_the_sources_own(tmp_path, serve, refused, monkeypatch):
    good = serve()
    monkeypatch.setenv("INFAUG_MIRRORS", f"{refused} {good.url}")
    assert mirror_urls(SOURCES["mnist"], ["http://a/"]) == ["http://a/", refused, good.url, *SOURCES["mnist"].mirrors]
    assert mirror_urls(SOURCES["mnist"], ["http://a/"], official=False) == ["http://a/", refused, good.url]
    raw, _ = fetch(tmp_path, retries=0)  # no mirrors given: INFAUG_MIRRORS' refused, then good
    assert_originals(raw)


def test_a_sources_own_mirrors(tmp_path, serve, refused):
    """A source's own mirrors, tried in turn, into its folder (FashionMNIST/raw), with the MNIST
    files standing in for its own."""
    good = serve()
    fake = Source("fashion-like", "FashionMNIST", (refused, good.url), SOURCES["mnist"].files)
    raw = download(fake, tmp_path, backoff=0, retries=0, log=None)
    assert raw == tmp_path / "FashionMNIST" / "raw"
    assert_originals(raw)


def test_fashion_mnist_entry(tmp_path, serve):
    fashion = SOURCES["fashion-mnist"]
    assert fashion.folder == "FashionMNIST"
    assert mirror_urls(fashion) == ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    assert sorted(f.name for f in fashion.files) == sorted(MD5)
    server = serve()  # serves MNIST's files under the same names: every checksum must fail
    with pytest.raises(DownloadError) as error:
        fetch(tmp_path, server.url, name="fashion-mnist")
    message = str(error.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    for file in fashion.files:
        mnist = hashlib.sha256(gzip.decompress((RAW / file.name).read_bytes())).hexdigest()
        assert (f"{server.url}{file.name}: content check failed: its data differ from the official {file.name}: "
                f"SHA-256 of its {file.size} decompressed bytes is {mnist}, expected {file.sha256}") in message
    assert not list((tmp_path / "FashionMNIST" / "raw").iterdir())


def test_an_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; known datasets: fashion-mnist, mnist"):
        download("cifar", tmp_path)


def test_cli_download(tmp_path, serve, capsys):
    server = serve()
    main(["download", "mnist", "--data-dir", str(tmp_path), "--mirror", server.url])
    out = capsys.readouterr().out
    assert str((tmp_path / "MNIST" / "raw").resolve()) in out
    assert f"--data-dir {tmp_path.resolve()}" in out.splitlines()[-1]
    assert_originals(tmp_path / "MNIST" / "raw")

    missing = serve(missing=True)
    with pytest.raises(SystemExit, match=f"(?s)infaug download: .*{re.escape(missing.url)}.*HTTP 404"):
        main(["download", "mnist", "--data-dir", str(tmp_path / "other"), "--mirror", missing.url, "--mirror-only"])
