"""File names cleaned on the way in, and offered per RFC 6266 on the way out."""

import unicodedata
from urllib.parse import unquote

import pytest

from services.attachments.names import MAX_LENGTH, ascii_fallback, clean_filename, content_disposition

CASES = [
    ("capture.png", "capture.png"),
    ("Écran noir (2).png", "Écran noir (2).png"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
    ("C:\\Users\\alice\\Documents\\relevé.pdf", "relevé.pdf"),
    ("rapport\x00.pdf", "rapport.pdf"),
    ("a\r\nContent-Type: text/html\r\n.txt", "html.txt"),  # "/" is a path separator
    ("a\r\nX-Injected: 1\r\n.txt", "aX-Injected: 1.txt"),
    ("rapport %22final%22.pdf", 'rapport "final".pdf'),
    ("ligne%0Acassée.txt", "lignecassée.txt"),
    ("photo\u202egnp.exe", "photognp.exe"),  # a right-to-left override disguising an .exe
    ("zero\u200bwidth.txt", "zerowidth.txt"),
    ("  spaced \t out  .txt ", "spaced out .txt"),
    (".bashrc", "bashrc"),
    ("...", "fichier"),
    ("", "fichier"),
    (None, "fichier"),
    ("/", "fichier"),
    ("-rf.txt", "rf.txt"),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_clean_filename(raw, expected):
    assert clean_filename(raw) == expected


def test_names_are_nfc():
    decomposed = unicodedata.normalize("NFD", "écran.png")
    assert clean_filename(decomposed) == unicodedata.normalize("NFC", "écran.png")


def test_long_names_keep_their_extension():
    name = clean_filename("x" * 5000 + ".pdf")
    assert len(name) == MAX_LENGTH and name.endswith(".pdf")
    assert len(clean_filename("y" * 5000)) == MAX_LENGTH


def test_content_disposition_has_an_ascii_fallback_and_the_exact_name():
    header = content_disposition('relevé "final"; 100%.pdf')
    assert header.startswith('attachment; filename="releve _final_; 100%.pdf"; filename*=UTF-8\'\'')
    assert unquote(header.split("UTF-8''", 1)[1]) == 'relevé "final"; 100%.pdf'
    assert header.isascii() and "\r" not in header and "\n" not in header


def test_ascii_fallback_of_non_latin_names():
    assert ascii_fallback("文件.pdf") == "__.pdf"
    assert ascii_fallback("œuvre.txt") == "_uvre.txt"
