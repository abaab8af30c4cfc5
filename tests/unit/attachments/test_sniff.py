"""Types read from the bytes: the allow-list, and what a name may (not) change."""

import io
import struct
import zipfile

import pytest

from services.attachments.sniff import TextEvidence, detect

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 100


def zipped(entries: list[tuple[str, bytes]], stored_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, data) in enumerate(entries):
            compress = zipfile.ZIP_STORED if stored_first and index == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compress)
    return buffer.getvalue()


def evidence(data: bytes) -> TextEvidence:
    text = TextEvidence()
    for start in range(0, len(data), 7):
        text.feed(data[start:start + 7])  # split inside multi-byte characters on purpose
    text.finish()
    return text


BMP = b"BM" + struct.pack("<I", 70) + b"\x00\x00\x00\x00" + struct.pack("<I", 54) + struct.pack("<I", 40) + b"\x00" * 60

ACCEPTED = [
    ("capture.png", PNG, "image/png"),
    ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 50, "image/jpeg"),
    ("anim.gif", b"GIF89a" + b"\x01" * 20, "image/gif"),
    ("image.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x01" * 20, "image/webp"),
    ("scan.tiff", b"II*\x00" + b"\x01" * 20, "image/tiff"),
    ("image.bmp", BMP, "image/bmp"),
    ("iphone.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20, "image/heic"),
    ("note.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"\x01\x02" * 50, "application/pdf"),
    ("lettre.rtf", b"{\\rtf1\\ansi Bonjour}", "application/rtf"),
    ("vieux.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "application/msword"),
    ("vieux.XLS", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "application/vnd.ms-excel"),
    ("rapport.docx", zipped([("[Content_Types].xml", b"<Types/>"), ("_rels/.rels", b"<r/>"), ("word/document.xml", b"<w/>")]),
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("budget.xlsx", zipped([("[Content_Types].xml", b"<Types/>"), ("xl/workbook.xml", b"<w/>")]),
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("cours.pptx", zipped([("[Content_Types].xml", b"<Types/>"), ("ppt/presentation.xml", b"<p/>")]),
     "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    ("texte.odt", zipped([("mimetype", b"application/vnd.oasis.opendocument.text"), ("content.xml", b"<x/>")], True),
     "application/vnd.oasis.opendocument.text"),
    ("calc.ods", zipped([("mimetype", b"application/vnd.oasis.opendocument.spreadsheet")], True),
     "application/vnd.oasis.opendocument.spreadsheet"),
    ("logs.zip", zipped([("a.txt", b"hello")]), "application/zip"),
    ("logs.tar.gz", b"\x1f\x8b\x08\x00" + b"\x00" * 20, "application/gzip"),
    ("logs.7z", b"7z\xbc\xaf\x27\x1c" + b"\x00" * 20, "application/x-7z-compressed"),
    ("logs.rar", b"Rar!\x1a\x07\x01\x00" + b"\x00" * 20, "application/vnd.rar"),
    ("logs.tar", b"a.txt".ljust(257, b"\x00") + b"ustar\x0000" + b"\x00" * 300, "application/x-tar"),
    ("logs.xz", b"\xfd7zXZ\x00" + b"\x00" * 10, "application/x-xz"),
    ("logs.bz2", b"BZh91AY&SY" + b"\x00" * 10, "application/x-bzip2"),
    ("notes.txt", "Écran noir après la mise à jour.\n".encode(), "text/plain; charset=utf-8"),
    ("ancien.txt", "Mise à jour échouée\r\n".encode("cp1252"), "text/plain; charset=windows-1252"),
    ("sans-extension", b"plain words\n", "text/plain; charset=utf-8"),
]


@pytest.mark.parametrize(("name", "data", "expected"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_types(name, data, expected):
    verdict = detect(data[:16384], name, evidence(data))
    assert verdict.accepted, verdict
    assert verdict.content_type == expected


REFUSED = [
    ("setup.png", b"MZ\x90\x00\x03" + b"\x00" * 100, "Windows executable"),
    ("photo.jpg", b"\x7fELF\x02\x01\x01" + b"\x00" * 100, "Linux executable"),
    ("app.pdf", b"\xcf\xfa\xed\xfe" + b"\x00" * 100, "macOS"),
    ("installer.doc.msi", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "compound"),
    ("game.zip", zipped([("META-INF/MANIFEST.MF", b"Main-Class: X")]), "Java"),
    ("video.mp4", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 20, "videos"),
    ("random.bin", bytes(range(256)) * 4, "could not be recognised"),
    ("utf16.txt", "Bonjour".encode("utf-16"), "could not be recognised"),
]


@pytest.mark.parametrize(("name", "data", "why"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_types(name, data, why):
    verdict = detect(data[:16384], name, evidence(data))
    assert not verdict.accepted
    assert why in verdict.refusal


def test_the_name_cannot_make_an_executable_acceptable():
    for name in ("x.png", "x.txt", "x.pdf", "x.doc", "x.zip"):
        assert not detect(b"MZ" + b"\x00" * 64, name).accepted


def test_text_with_a_nul_after_its_head_is_not_text():
    data = b"a" * 20000 + b"\x00" + b"b" * 10
    assert not detect(data[:16384], "notes.txt", evidence(data)).accepted


def test_text_evidence_spots_invalid_utf8_anywhere():
    data = "é".encode() * 10000 + b"\xe9t\xe9"
    text = evidence(data)
    assert not text.has_nul and not text.utf8
    assert detect(data[:16384], "x.txt", text).content_type == "text/plain; charset=windows-1252"
