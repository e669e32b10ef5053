"""The MkDocs hook of infaug's documentation site (``hooks:`` in mkdocs.yml).

What it does, so that the site cannot drift from the code and has no broken link or picture:

- ``<!-- config-keys -->`` in a page becomes the table of every configuration key, built from
  ``infaug/config.py`` itself: the keys and defaults from its dataclasses, the meaning from the
  comment on (or just above) each field, else from the clauses of its class's docstring that name
  it. ``<!-- preset-keys -->`` becomes the keys each preset (``infaug/presets/*.toml``) sets, and
  ``<!-- cli-help -->`` the ``--help`` of every ``infaug`` command, from ``infaug.cli.parser()``.
- Pages may link to files of the repository outside ``docs/`` with ordinary relative links (which
  work when the markdown is read on a code host too). Pictures so linked, and the long record
  ``results/mnist/README.md`` (``REPO_PAGES``), are copied into the site under ``repo/``, and the
  links point there; a link to any other repository file becomes its plain text in the site.
- The docstrings of the API page, and those the configuration table quotes, go through
  ``infaug_docstrings.readable`` (the Griffe extension beside this file): Sphinx roles and
  ``.. math::`` become Markdown, and citations of the project's internal contract, which users do
  not have, are dropped.

Everything but the ``on_*`` functions runs without MkDocs, so ``tests/test_site.py`` uses the same
link parser, slug rules and generated markdown to check the pages.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import os
import posixpath
import re
import tokenize
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOOKS = Path(__file__).resolve().parent
DOCS = REPO / "docs"
SITE_REPO_DIR = "repo"  # repository files copied into the site land under this folder
REPO_PAGES = ("results/mnist/README.md",)  # repository markdown shown as site pages
PICTURES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")

# ---- markdown: links and headings ------------------------------------------------------------

FENCE = re.compile(r"^(\s*)(```+|~~~+)")
LINK = re.compile(r"(?P<bang>!?)\[(?P<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]\((?P<target><[^>]*>|[^()\s]+)(?P<title>\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ATTR_ID = re.compile(r"\s*\{[^}]*#([\w-]+)[^}]*\}\s*$")
HTML_ID = re.compile(r"<a\s+(?:[^>]*\s)?(?:id|name)=\"([^\"]+)\"")


def split_code(markdown: str) -> list[tuple[bool, str]]:
    """The markdown as (is fenced code, text) chunks, in order; joining the texts gives it back."""
    chunks: list[tuple[bool, str]] = []
    fence = None
    for line in markdown.splitlines(keepends=True):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(2)[0] * len(match.group(2))
            chunks.append((True, line))
        elif fence is not None:
            chunks.append((True, line))
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                fence = None
        else:
            chunks.append((False, line))
    merged: list[tuple[bool, str]] = []
    for code, text in chunks:
        if merged and merged[-1][0] == code:
            merged[-1] = (code, merged[-1][1] + text)
        else:
            merged.append((code, text))
    return merged


def links(markdown: str) -> list[dict]:
    """Every inline link and picture outside fenced code and code spans: dicts with ``picture``
    (bool), ``text``, ``target`` (as written), ``line`` (1-based), ``start`` and ``end`` (offsets
    in ``markdown``)."""
    found, offset = [], 0
    for code, text in split_code(markdown):
        if not code:
            matches = list(LINK.finditer(text))
            # a code span inside a link's text ([`x`](y)) is part of the link; one outside hides links
            spans = [m.span() for m in re.finditer(r"(`+)(.+?)\1", text)
                     if not any(l.start() <= m.start() and m.end() <= l.end() for l in matches)]
            for match in matches:
                if any(a <= match.start() < b for a, b in spans):
                    continue
                found.append({
                    "picture": bool(match.group("bang")), "text": match.group("text"),
                    "target": match.group("target").strip("<>"),
                    "line": markdown.count("\n", 0, offset + match.start()) + 1,
                    "start": offset + match.start(), "end": offset + match.end(),
                })
        offset += len(text)
    return found


def heading_text(raw: str) -> str:
    """The text of a heading as rendered (markup removed), which both slug rules start from."""
    text = ATTR_ID.sub("", raw)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and pictures: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    pieces, last = [], 0
    for match in re.finditer(r"(`+)(.+?)\1", text):  # code spans give their content; emphasis only outside them
        pieces += [_without_emphasis(text[last:match.start()]), match.group(2)]
        last = match.end()
    pieces.append(_without_emphasis(text[last:]))
    return "".join(pieces).replace("&amp;", "&").strip()


def _without_emphasis(text: str) -> str:
    text = re.sub(r"(\*\*|\*)(?=\S)(.+?)(?<=\S)\1", r"\2", text)
    return re.sub(r"(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\1(?!\w)", r"\2", text)  # intraword _ is no emphasis


def mkdocs_slug(text: str) -> str:
    """Python-Markdown's toc slug (MkDocs' default): ASCII, word characters, spaces and hyphens
    kept, lower case, every run of spaces and hyphens one hyphen."""
    value = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def github_slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation but hyphens and underscores removed, each
    space one hyphen (runs are not collapsed)."""
    value = re.sub(r"[^\w\- ]", "", text.lower())
    return value.replace(" ", "-")


def anchors(markdown: str, rule: str) -> set[str]:
    """The anchors a page's headings (and explicit ``{#id}`` / ``<a id=...>``) give under ``rule``
    ("mkdocs" or "github"), with each rule's suffixes for repeated headings."""
    slug = mkdocs_slug if rule == "mkdocs" else github_slug
    seen: set[str] = set()
    for code, text in split_code(markdown):
        if code:
            continue
        seen.update(HTML_ID.findall(text))
        for line in text.splitlines():
            match = HEADING.match(line)
            if not match:
                continue
            explicit = ATTR_ID.search(match.group(2))
            if explicit:
                seen.add(explicit.group(1))
                continue
            base = slug(heading_text(match.group(2)))
            name, count = base, 0
            while name in seen or not name:
                count += 1
                name = f"{base}_{count}" if rule == "mkdocs" else f"{base}-{count}"
            seen.add(name)
    return seen


def is_local(target: str) -> bool:
    """Whether a link target is a file or an anchor of this repository (not a URL or mail address)."""
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) and not target.startswith("//")


def _docstrings_module():
    """The sibling Griffe extension (its rewriting of docstrings serves the generated tables too)."""
    import importlib.util
    import sys

    name = "infaug_docs_docstrings"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HOOKS / "infaug_docstrings.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


# ---- generated markdown ----------------------------------------------------------------------

MARKERS = ("<!-- config-keys -->", "<!-- preset-keys -->", "<!-- cli-help -->")


def _field_comments(source: str) -> dict[str, dict[str, str]]:
    """{class name: {field name: its comment}} for the annotated fields of ``source``'s classes:
    the comment at the end of the field's line, else the block of comment lines just above it."""
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    result: dict[str, dict[str, str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        fields = result.setdefault(node.name, {})
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            text = comments.get(item.lineno) if item.lineno in comments and lines[item.lineno - 1].lstrip()[:1] != "#" else None
            if not text:
                block, line = [], item.lineno - 1
                while line in comments and lines[line - 1].lstrip().startswith("#"):
                    block.insert(0, comments[line])
                    line -= 1
                text = " ".join(block)
            if text:
                fields[item.target.id] = text
    return result


def _clauses(docstring: str) -> list[str]:
    """A docstring cut into clauses: at paragraph breaks, and at '; ' and '. ' outside parentheses
    (not after "e.g" or "i.e")."""
    clauses = []
    for paragraph in re.split(r"\n\s*\n", docstring):
        text = " ".join(paragraph.split())
        depth, start = 0, 0
        for i, char in enumerate(text):
            depth += (char in "([") - (char in ")]")
            end_of_sentence = char == "." and text[i + 1: i + 2] == " " and not text[:i].endswith(("e.g", "i.e"))
            if depth == 0 and (char == ";" or end_of_sentence):
                clauses.append(text[start:i])
                start = i + 1
        clauses.append(text[start:])
    return [c.strip().rstrip(".") for c in clauses if c.strip(" .;")]


def _mentions(clause: str, name: str, *, bare: bool) -> bool:
    """Whether ``clause`` names the field: as ``name``, or (``bare``, for a docstring that writes
    no field in double backquotes) as the plain word."""
    if f"``{name}``" in clause:
        return True
    return bare and re.search(rf"(?<![\w.`]){re.escape(name)}(?![\w`])", clause) is not None


def _rst_to_markdown(text: str) -> str:
    return _docstrings_module().readable(text).replace("``", "`")


def _cell(text: str) -> str:
    text = _rst_to_markdown(text).replace("|", "\\|")
    return text[:1].upper() + text[1:] if text else text


def _type_name(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (tuple, list)):
        kinds = sorted({_type_name(v) for v in value})
        return f"list of {' or '.join(kinds)}" if kinds else "list"
    return type(value).__name__


def config_rows() -> list[dict]:
    """Every key of ``infaug.config.Config``, in order: dicts with ``key``, ``section`` (the
    dataclass, or None for a top-level key), ``default`` (as TOML), ``type``, ``meaning`` ("" when
    config.py gives none) and ``source`` ("comment", "docstring" or "")."""
    import infaug.config as config_module

    source = Path(config_module.__file__).read_text(encoding="utf-8")
    comments = _field_comments(source)
    defaults = config_module.Config()
    rows = []
    for top in dataclasses.fields(defaults):
        value = getattr(defaults, top.name)
        if dataclasses.is_dataclass(value):
            cls = type(value)
            clauses = _clauses(cls.__doc__ or "")
            bare = not any(f"``{f.name}``" in (cls.__doc__ or "") for f in dataclasses.fields(value))
            for field in dataclasses.fields(value):
                own = comments.get(cls.__name__, {}).get(field.name, "")
                named = [c for c in clauses if _mentions(c, field.name, bare=bare)]
                meaning = own or ("; ".join(named) + "." if named else "")
                rows.append(dict(key=f"{top.name}.{field.name}", section=cls, default=_toml(getattr(value, field.name)),
                                 type=_type_name(getattr(value, field.name)), meaning=meaning,
                                 source="comment" if own else "docstring" if named else ""))
        else:
            own = comments.get("Config", {}).get(top.name, "")
            rows.append(dict(key=top.name, section=None, default=_toml(value), type=_type_name(value), meaning=own,
                             source="comment" if own else ""))
    return rows


def undocumented_keys() -> list[str]:
    """The configuration keys for which infaug/config.py gives no meaning at all."""
    return [row["key"] for row in config_rows() if not row["meaning"]]


def _toml(value) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)  # numbers, strings, booleans and lists of them read the same in TOML


def config_markdown() -> str:
    """The configuration reference: per table of the TOML file, its class docstring and a table
    of its keys."""
    rows = config_rows()
    out = []
    sections: list = []
    for row in rows:
        if row["section"] not in sections:
            sections.append(row["section"])
    for section in sections:
        members = [r for r in rows if r["section"] is section]
        if section is None:
            out.append("### Top-level keys\n")
        else:
            table = members[0]["key"].split(".")[0]
            out.append(f"### `[{table}]`\n")
            doc = " ".join((section.__doc__ or "").split())
            if doc:
                out.append(_rst_to_markdown(doc) + "\n")
        out.append("| key | default | type | meaning |")
        out.append("|---|---|---|---|")
        for r in members:
            meaning = _cell(r["meaning"]) or "(no description in `infaug/config.py`)"
            out.append(f"| `{r['key']}` | `{r['default']}` | {r['type']} | {meaning} |")
        out.append("")
    return "\n".join(out)


def preset_markdown() -> str:
    """What each shipped preset sets over the defaults, read from ``infaug/presets/*.toml``."""
    import tomllib

    from infaug.config import PRESETS, flat

    out = ["| preset | keys it sets (over the defaults) |", "|---|---|"]
    for path in sorted(PRESETS.glob("*.toml")):
        values = flat(tomllib.loads(path.read_text(encoding="utf-8")))
        keys = ", ".join(f"`{k} = {_toml(v)}`" for k, v in values.items()) or "nothing: the defaults"
        out.append(f"| `{path.stem}` | {keys} |")
    return "\n".join(out) + "\n"


def cli_markdown() -> str:
    """``infaug --help`` and each command's ``--help``, from the parser ``infaug`` itself uses."""
    import argparse

    from infaug.cli import parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        main = parser()
        out = ["```text", main.format_help().rstrip(), "```", ""]
        for action in main._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out += [f"### `infaug {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(out)


def expand_markers(markdown: str) -> str:
    """``markdown`` with every marker of ``MARKERS`` replaced by what it stands for."""
    makers = {"<!-- config-keys -->": config_markdown, "<!-- preset-keys -->": preset_markdown,
              "<!-- cli-help -->": cli_markdown}
    for marker, make in makers.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


# ---- repository files in the site ------------------------------------------------------------


def repo_path(page_uri: str) -> str:
    """Where the page whose site path is ``page_uri`` lives in the repository (posix, relative)."""
    prefix = SITE_REPO_DIR + "/"
    return page_uri[len(prefix):] if page_uri.startswith(prefix) else "docs/" + page_uri


def resolve(page_repo_path: str, target: str) -> tuple[str, str]:
    """(the repository path a relative link of a page points to, its '#anchor' or ''). The path
    is that of the page itself for a bare '#anchor'; it may start with '../' when the link leaves
    the repository."""
    path, _, anchor = target.partition("#")
    if not path:
        return page_repo_path, anchor
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(page_repo_path), path.split("?")[0]))
    return joined, anchor


def site_uri(repo_file: str) -> str | None:
    """The site path of a repository file, when the site holds it: docs/ pages and assets at
    their place, copied pictures and ``REPO_PAGES`` under ``repo/``; None otherwise."""
    if repo_file.startswith("docs/"):
        return repo_file[len("docs/"):]
    if repo_file in REPO_PAGES or repo_file.lower().endswith(PICTURES):
        return f"{SITE_REPO_DIR}/{repo_file}"
    return None


def copied_files(pages: dict[str, str]) -> set[str]:
    """The repository files outside docs/ that the site must hold, given {repository path of a
    page: its markdown}: the ``REPO_PAGES`` and every picture those pages show."""
    wanted = {p for p in REPO_PAGES if (REPO / p).is_file()}
    for path, markdown in pages.items():
        for link in links(markdown):
            if not is_local(link["target"]):
                continue
            target, _ = resolve(path, link["target"])
            if (not target.startswith("docs/") and not target.startswith("..") and target.lower().endswith(PICTURES)
                    and (REPO / target).is_file()):
                wanted.add(target)
    return wanted


def rewrite_links(markdown: str, page_uri: str, available: set[str]) -> str:
    """The links of a page rewritten for the site: a link to a repository file the site holds
    (``available``: site paths) points to it there; a link to another repository file becomes its
    text; URLs and links inside docs/ stay as written."""
    page_repo = repo_path(page_uri)
    pieces, last = [], 0
    for link in links(markdown):
        target = link["target"]
        if not is_local(target) or target.startswith("#"):
            continue
        repo_file, anchor = resolve(page_repo, target)
        if repo_file.startswith("docs/") and page_repo.startswith("docs/"):
            continue  # a link between docs pages: MkDocs resolves it
        uri = site_uri(repo_file.rstrip("/"))
        if uri is not None and uri in available:
            new = posixpath.relpath(uri, posixpath.dirname(page_uri) or ".") + (f"#{anchor}" if anchor else "")
            replacement = f"{'!' if link['picture'] else ''}[{link['text']}]({new})"
        else:
            replacement = link["text"]
        pieces.append(markdown[last:link["start"]])
        pieces.append(replacement)
        last = link["end"]
    pieces.append(markdown[last:])
    return "".join(pieces)


# ---- MkDocs events ---------------------------------------------------------------------------


def on_files(files, config):
    from mkdocs.structure.files import File

    pages = {}
    for file in files.documentation_pages():
        pages[repo_path(file.src_uri)] = Path(file.abs_src_path).read_text(encoding="utf-8")
    for path in REPO_PAGES:
        if (REPO / path).is_file():
            pages[path] = (REPO / path).read_text(encoding="utf-8")
    for path in sorted(copied_files(pages)):
        uri = site_uri(path)
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(REPO / path)))
    return files


def on_page_markdown(markdown, page, config, files):
    available = {file.src_uri for file in files}
    return rewrite_links(expand_markers(markdown), page.file.src_uri, available)
