"""``report.html``: the Markdown report as one self-contained page.

:func:`to_html` renders the Markdown that :mod:`thermocheck.report` writes (headings, paragraphs,
lists, pipe tables, fenced code, images, ``**bold**``, ``*italic*``, ``` `code` ```, links to
anchors in the page, and the ``<a id="…">`` anchors it places) into HTML, with every image read
from the report folder and inlined as a base64 ``data:`` URI. The page needs nothing else: no
stylesheet, script or image file, so it opens in any browser and can be mailed as one file. It is
a renderer for that subset, not a general Markdown implementation.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from pathlib import Path

from thermocheck.errors import InvalidParameterError

__all__ = ["to_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; vertical-align: top; text-align: left; }
th { background: #f2f2f2; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }
code { font-size: 0.9em; }
h3 { border-top: 1px solid #ddd; padding-top: 0.8rem; }
"""

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)$")
_ANCHOR = re.compile(r'^<a id="(?P<id>[A-Za-z0-9_.-]+)"></a>$')


def _slug(text: str) -> str:
    """The id of a heading: lower case, runs of other characters as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _inline(text: str) -> str:
    """Escape ``text`` and render its inline markup (code spans first, so their content stays
    literal)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            code = html.escape(part[1:-1].replace("\\|", "|"))
            out.append(f"<code>{code}</code>")
            continue
        s = html.escape(part.replace("\\|", "|").replace("\\*", "\x00"), quote=True)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", s)
        s = re.sub(r"\[([^\]]+)\]\((#[A-Za-z0-9_.-]+|https?://[^)\s]+)\)",
                   r'<a href="\2">\1</a>', s)
        out.append(s.replace("\x00", "*"))
    return "".join(out)


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row (``\\|`` is a literal bar)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _image(alt: str, src: str, folder: Path) -> str:
    """An ``<img>`` with the file ``folder/src`` inlined as base64."""
    path = folder / src
    kinds = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}
    kind = kinds.get(path.suffix.lower())
    if kind is None or not path.is_file():
        raise InvalidParameterError(f"image {src!r} of the report is not a PNG, SVG or JPEG file "
                                    f"in {str(folder)!r}")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt, quote=True)}" '
            f'src="data:{kind};base64,{data}"></figure>')


def _blocks(lines: list[str], folder: Path) -> Iterator[str]:
    """HTML blocks from Markdown lines."""
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
        elif stripped.startswith("```"):
            end = next((k for k in range(i + 1, len(lines)) if lines[k].strip() == "```"),
                       len(lines))
            yield "<pre><code>" + html.escape("\n".join(lines[i + 1:end])) + "</code></pre>"
            i = end + 1
        elif stripped.startswith("#"):
            level = len(stripped) - len(stripped.lstrip("#"))
            text = stripped[level:].strip()
            yield f'<h{level} id="{_slug(text)}">{_inline(text)}</h{level}>'
            i += 1
        elif (match := _ANCHOR.match(stripped)) is not None:
            yield f'<a id="{match["id"]}"></a>'
            i += 1
        elif (match := _IMAGE.match(stripped)) is not None:
            yield _image(match["alt"], match["src"], folder)
            i += 1
        elif stripped.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            body = [r for r in rows[1:] if not all(set(c) <= set("-: ") for c in r)]
            head = "".join(f"<th>{_inline(c)}</th>" for c in rows[0])
            cells = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                            for r in body)
            yield f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>"
        elif stripped.startswith("- "):
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            yield "<ul>" + "".join(items) + "</ul>"
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not _starts_block(lines[i].strip()):
                para.append(lines[i].strip())
                i += 1
            yield f"<p>{_inline(' '.join(para))}</p>"


def _starts_block(stripped: str) -> bool:
    return (stripped.startswith(("#", "|", "- ", "```")) or bool(_IMAGE.match(stripped))
            or bool(_ANCHOR.match(stripped)))


def to_html(markdown: str, folder: str | Path, *, title: str = "thermocheck report") -> str:
    """The Markdown report ``markdown`` as one HTML page, its images (paths relative to the
    report ``folder``) inlined; raises :class:`~thermocheck.errors.InvalidParameterError` for an
    image that is not a file there."""
    body = "\n".join(_blocks(markdown.splitlines(), Path(folder)))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"{body}\n</body>\n</html>\n")
