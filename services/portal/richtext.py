"""Descriptions and comments: what the person typed is stored as typed, and rendered
here, at display time, in a small safe subset.

The input syntax (shown under each text field):

- ``**gras**`` and ``*italique*``;
- lines starting with ``- `` make a list, lines starting with ``1. `` a numbered list;
- ``[texte](https://exemple.fr)`` is a link; a bare ``https://...`` address becomes one;
- an empty line starts a new paragraph.

Everything else is text: the input is HTML-escaped first (so ``<script>`` shows as
``<script>``), then the subset is turned into tags, then ``nh3`` (ammonia) keeps only
those tags and ``http``/``https``/``mailto`` links, whatever slipped through.
"""

from __future__ import annotations

import re

import nh3
from markupsafe import Markup, escape

TAGS = {"p", "br", "strong", "em", "ul", "ol", "li", "a"}
ATTRIBUTES = {"a": {"href"}}
SCHEMES = {"http", "https", "mailto"}

_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![\*\w])\*(?=\S)(.+?)(?<=\S)\*(?![\*\w])")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?://|mailto:)[^\s)]+)\)")
_BARE = re.compile(r"(?<![\"'=>])\b(https?://[^\s<]+[^\s<.,;:!?)\]'\"])")
_BULLET = re.compile(r"^\s*[-*•]\s+(.*)$")
_NUMBER = re.compile(r"^\s*\d+[.)]\s+(.*)$")


def _inline(text: str) -> str:
    """Escaped text with bold, italic and links."""
    links: list[str] = []

    def keep(match: re.Match[str]) -> str:
        links.append(f'<a href="{match.group(2)}">{match.group(1)}</a>')
        return f"\x00{len(links) - 1}\x00"

    text = _LINK.sub(keep, text)
    text = _BARE.sub(lambda m: f'<a href="{m.group(1)}">{m.group(1)}</a>', text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _ITALIC.sub(r"<em>\1</em>", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: links[int(m.group(1))], text)


def _block(lines: list[str]) -> str:
    """One block (between empty lines): paragraphs with line breaks, and lists."""
    html: list[str] = []
    paragraph: list[str] = []
    kind: str | None = None
    for line in [*lines, None]:
        bullet = _BULLET.match(line) if line is not None else None
        number = _NUMBER.match(line) if line is not None else None
        item = bullet or number
        wanted = "ul" if bullet else "ol" if number else None
        if paragraph and (item or line is None):
            html.append("<p>" + "<br>".join(_inline(p) for p in paragraph) + "</p>")
            paragraph = []
        if kind and kind != wanted:
            html.append(f"</{kind}>")
            kind = None
        if item:
            if kind is None:
                html.append(f"<{wanted}>")
                kind = wanted
            html.append(f"<li>{_inline(item.group(1))}</li>")
        elif line is not None:
            paragraph.append(line)
    return "".join(html)


def render(source: str | None) -> Markup:
    """The safe HTML of what the person typed."""
    if not source:
        return Markup("")
    escaped = str(escape(source.replace("\r\n", "\n").replace("\x00", "")))
    blocks = [_block(block.split("\n")) for block in re.split(r"\n\s*\n", escaped.strip())]
    cleaned = nh3.clean(
        "".join(blocks), tags=TAGS, attributes=ATTRIBUTES, url_schemes=SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(cleaned)  # noqa: S704 - cleaned by nh3 just above
