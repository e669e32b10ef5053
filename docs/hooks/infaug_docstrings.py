"""A Griffe extension (mkdocs.yml: mkdocstrings' ``extensions``) that makes infaug's docstrings,
written for ``help()`` and Sphinx habits, read well as the Markdown mkdocstrings renders:

- Sphinx roles (:func:`warp`, :class:`~infaug.data.Digits`) become code spans;
- a ``.. math::`` directive becomes a code block holding its formula;
- a lone ``*`` between two words (``K*P``) is escaped, so it is not taken for emphasis.

Nothing here changes the package: only the site's copy of each docstring.
"""

from __future__ import annotations

import re
import textwrap

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")

def _math_blocks(text: str) -> str:
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == ".. math::":
            indent = len(line) - len(line.lstrip())
            block, i = [], i + 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            formula = textwrap.dedent("\n".join(block)).strip("\n")
            pad = " " * indent
            out += [pad + "```text", *(pad + f for f in formula.splitlines()), pad + "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _outside_code(text: str, change) -> str:
    pieces, last = [], 0
    for match in CODE_SPAN.finditer(text):
        pieces += [change(text[last:match.start()]), match.group(0)]
        last = match.end()
    pieces.append(change(text[last:]))
    return "".join(pieces)


def readable(text: str) -> str:
    """One docstring, rewritten for the site."""
    text = ROLE.sub(r"`\1`", text)
    text = _math_blocks(text)
    chunks = re.split(r"(```text\n.*?```)", text, flags=re.S)  # leave the formulas as they are
    for n in range(0, len(chunks), 2):
        chunks[n] = _outside_code(chunks[n], lambda t: re.sub(r"(?<=\w)\*(?=\w)", r"\\*", t))
    return "".join(chunks)


class ReadableDocstrings(griffe.Extension):
    """Rewrites each object's docstring as Griffe creates the object (``on_instance`` exists in
    every Griffe this site supports, 1.12 on; ``readable`` is idempotent)."""

    def on_instance(self, *, obj, **kwargs) -> None:
        if getattr(obj, "docstring", None) is not None:
            obj.docstring.value = readable(obj.docstring.value)
