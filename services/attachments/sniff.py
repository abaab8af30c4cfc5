"""What a file is, read from its bytes (magic numbers), never from the name or the
type a client claims; and whether Guichet accepts it.

Pure: the upload hands over the first bytes of the file (``HEAD_BYTES``) and what it
saw while streaming the rest (``TextEvidence``). The allow-list: images, PDF, office
documents (OOXML and OpenDocument zips, legacy OLE2 files, RTF), plain text and
archives. Anything else, executables first among them, is refused.

The file name may only *refine* a type within the family the bytes prove (an OLE2
file named ``.xls`` is a spreadsheet), never turn a refused file into an accepted one.
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass, field

HEAD_BYTES = 16 * 1024


@dataclass(frozen=True)
class Verdict:
    """The detected type, and why it is refused (None when accepted)."""

    content_type: str
    refusal: str | None = None

    @property
    def accepted(self) -> bool:
        return self.refusal is None


@dataclass
class TextEvidence:
    """What a text file must prove over ALL its bytes, gathered chunk by chunk while
    streaming: no NUL byte, and whether it is valid UTF-8 (else it is read as
    Windows-1252, the usual encoding of older French text files)."""

    has_nul: bool = False
    utf8: bool = True
    _decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())

    def feed(self, chunk: bytes) -> None:
        if not self.has_nul and b"\x00" in chunk:
            self.has_nul = True
        if self.utf8 and not self.has_nul:
            try:
                self._decoder.decode(chunk)
            except UnicodeDecodeError:
                self.utf8 = False

    def finish(self) -> None:
        if self.utf8 and not self.has_nul:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.utf8 = False


OLE2_TYPES = {
    "doc": "application/msword",
    "dot": "application/msword",
    "xls": "application/vnd.ms-excel",
    "xlt": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "pps": "application/vnd.ms-powerpoint",
    "msg": "application/vnd.ms-outlook",
}
OOXML_TYPES = {
    b"word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    b"xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    b"ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
OOXML_BY_EXTENSION = {
    "docx": OOXML_TYPES[b"word/"],
    "xlsx": OOXML_TYPES[b"xl/"],
    "pptx": OOXML_TYPES[b"ppt/"],
}
HEIF_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heif", b"msf1": "image/heif",
               b"avif": "image/avif"}

# Executables, by their first bytes: refused with a message that says so.
EXECUTABLES = (
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "a Linux executable"),
    (b"\xfe\xed\xfa\xce", "a macOS executable"),
    (b"\xfe\xed\xfa\xcf", "a macOS executable"),
    (b"\xce\xfa\xed\xfe", "a macOS executable"),
    (b"\xcf\xfa\xed\xfe", "a macOS executable"),
    (b"\xca\xfe\xba\xbe", "a macOS or Java executable"),
    (b"\x00asm", "a WebAssembly module"),
)

ALLOWED_FAMILIES = "images, PDF, office documents, plain text and archives"


def _extension(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem else ""


def detect(head: bytes, filename: str = "", text: TextEvidence | None = None) -> Verdict:
    """The type of a file whose first bytes are ``head`` (up to ``HEAD_BYTES``).

    ``text`` is the evidence gathered over the whole file; without it a file that looks
    like text in its head is taken as text.
    """
    for magic, what in EXECUTABLES:
        if head.startswith(magic):
            return Verdict("application/x-executable", f"the file is {what}")
    binary = _binary_type(head, _extension(filename))
    if binary is not None:
        return binary
    if _looks_like_text(head) and (text is None or not text.has_nul):
        utf8 = text.utf8 if text is not None else _decodes(head)
        return Verdict("text/plain; charset=utf-8" if utf8 else "text/plain; charset=windows-1252")
    return Verdict("application/octet-stream", "the file's type could not be recognised")


def _binary_type(head: bytes, ext: str) -> Verdict | None:
    # Images
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Verdict("image/png")
    if head.startswith(b"\xff\xd8\xff"):
        return Verdict("image/jpeg")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Verdict("image/gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Verdict("image/webp")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Verdict("image/tiff")
    if head[:2] == b"BM" and len(head) >= 18 and head[6:10] == b"\x00\x00\x00\x00" and \
            struct.unpack("<I", head[14:18])[0] in (12, 40, 52, 56, 64, 108, 124):
        return Verdict("image/bmp")
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return Verdict(HEIF_BRANDS[head[8:12]])
    if head[4:8] == b"ftyp":
        return Verdict("video/mp4", "videos are not accepted")
    # Documents
    if b"%PDF-" in head[:1024]:
        return Verdict("application/pdf")
    if head.startswith(b"{\\rtf"):
        return Verdict("application/rtf")
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        # OLE2 holds Word, Excel and PowerPoint 97-2003 files, but also Windows
        # installers (.msi): only the office extensions are taken.
        if ext in OLE2_TYPES:
            return Verdict(OLE2_TYPES[ext])
        return Verdict("application/x-ole-storage", "only .doc, .xls, .ppt and .msg compound files are accepted")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_type(head, ext)
    # Archives
    if head.startswith(b"\x1f\x8b"):
        return Verdict("application/gzip")
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return Verdict("application/x-bzip2")
    if head.startswith(b"\xfd7zXZ\x00"):
        return Verdict("application/x-xz")
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return Verdict("application/x-7z-compressed")
    if head.startswith(b"Rar!\x1a\x07"):
        return Verdict("application/vnd.rar")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return Verdict("application/zstd")
    if head[257:262] == b"ustar":
        return Verdict("application/x-tar")
    return None


def _zip_type(head: bytes, ext: str) -> Verdict:
    """A zip: OpenDocument (its first entry is ``mimetype``, stored), OOXML (an
    ``[Content_Types].xml`` entry), a Java or Android package (refused), else an archive."""
    if head.startswith(b"PK\x03\x04") and len(head) >= 30:
        name_length, extra_length = struct.unpack("<HH", head[26:30])
        first = head[30:30 + name_length]
        if first == b"mimetype":
            size = struct.unpack("<I", head[18:22])[0]
            start = 30 + name_length + extra_length
            declared = head[start:start + min(size, 100)]
            if declared.startswith(b"application/vnd.oasis.opendocument."):
                return Verdict(declared.decode("ascii", "replace"))
        if first.startswith(b"META-INF/") or b"AndroidManifest.xml" in head or b"classes.dex" in head:
            return Verdict("application/java-archive", "Java and Android packages are not accepted")
    if b"[Content_Types].xml" in head:
        for marker, content_type in OOXML_TYPES.items():
            if marker in head:
                return Verdict(content_type)
        if ext in OOXML_BY_EXTENSION:
            return Verdict(OOXML_BY_EXTENSION[ext])
    return Verdict("application/zip")


def _decodes(head: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)
        return True
    except UnicodeDecodeError:
        return False


CONTROL_ALLOWED = {9, 10, 12, 13, 27}


def _looks_like_text(head: bytes) -> bool:
    """No NUL, and (almost) no control characters but tab, newlines, form feed and ESC."""
    if not head or b"\x00" in head:
        return False
    controls = sum(1 for b in head if (b < 32 and b not in CONTROL_ALLOWED) or b == 127)
    return controls * 100 <= len(head)
