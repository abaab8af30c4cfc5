"""File names: cleaned on the way in, offered safely on the way out (RFC 6266).

A name is shown as its user sent it wherever that is safe: accents, spaces, quotes and
brackets are kept. What goes: any path (``../``, ``C:\\``), control and invisible
formatting characters (NUL, newlines, right-to-left overrides that disguise
``gpj.exe`` as ``exe.jpg``), leading dots and trailing dots or spaces. The result is
NFC-normalised and at most ``MAX_LENGTH`` characters, its extension kept.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

MAX_LENGTH = 200
MAX_EXTENSION = 16
DEFAULT_NAME = "fichier"
# Categories dropped: controls, format characters (bidi overrides, zero-width),
# surrogates, private use, unassigned, line and paragraph separators.
DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Browsers send a quote and line breaks in a multipart file name as %22, %0D, %0A
# (HTML "multipart/form-data encoding algorithm"): undone before cleaning.
BROWSER_ESCAPES = (("%22", '"'), ("%0D", "\r"), ("%0A", "\n"), ("%0d", "\r"), ("%0a", "\n"))


def clean_filename(raw: str | None) -> str:
    """The name to keep for an uploaded file (never empty)."""
    name = raw or ""
    for escaped, char in BROWSER_ESCAPES:
        name = name.replace(escaped, char)
    name = unicodedata.normalize("NFC", name)
    # Only the last path component: "C:\\Users\\a\\doc.pdf" and "../../x.pdf" name a file.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in DROPPED)
    name = " ".join(name.split())  # tabs and runs of spaces become one space
    name = name.strip(" .").lstrip("-")
    if not name:
        return DEFAULT_NAME
    return _bounded(name)


def _bounded(name: str) -> str:
    if len(name) <= MAX_LENGTH:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and stem and len(ext) <= MAX_EXTENSION:
        return stem[: MAX_LENGTH - len(ext) - 1].rstrip(" .") + "." + ext
    return name[:MAX_LENGTH].rstrip(" .")


def ascii_fallback(name: str) -> str:
    """The name for clients that do not read ``filename*``: accents dropped
    (``écran`` -> ``ecran``), other non-ASCII characters, quotes and backslashes as ``_``."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    out = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in plain)
    return out.strip() or DEFAULT_NAME


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact ``filename*`` (RFC 6266, RFC 8187)."""
    encoded = quote(name, safe="!#$&+^`|")
    return f"attachment; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{encoded}"
