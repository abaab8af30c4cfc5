"""Reading an upload: a ``multipart/form-data`` body with one ``file`` part, streamed
from the socket to the blob store in ``CHUNK`` pieces, never held whole in memory.

The body is parsed as it arrives (``multipart.MultipartReader``); the file
part's bytes go to a ``BlobWriter`` (temporary file, SHA-256 on the way), its first
``HEAD_BYTES`` are kept to read its type. The upload stops as soon as it passes the
size limit (413) or its first bytes show a type that is not accepted (415), and then
nothing stays behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from services.attachments import names, sniff
from services.attachments.multipart import Data, Event, MalformedMultipart, MultipartReader, Part, PartEnd
from services.attachments.storage import BlobStore, BlobWriter
from shared.web import HttpProblem

CHUNK = 64 * 1024
# Room for the multipart framing and small fields around the file part.
FRAMING_BYTES = 64 * 1024
FIELD = "file"


@dataclass
class Upload:
    """A file received whole and accepted, not yet kept."""

    writer: BlobWriter
    filename: str
    verdict: sniff.Verdict


def _too_large(max_bytes: int) -> HttpProblem:
    mib = max_bytes / (1024 * 1024)
    return HttpProblem(413, f"le fichier dépasse la taille maximale ({mib:g} Mio) /"
                            f" the file is larger than the limit ({max_bytes} bytes)")


def _unsupported(verdict: sniff.Verdict) -> HttpProblem:
    return HttpProblem(
        415,
        f"type de fichier refusé / file type not accepted: {verdict.refusal} (detected {verdict.content_type});"
        f" accepted: {sniff.ALLOWED_FAMILIES}",
    )


def _invalid(message: str) -> HttpProblem:
    return HttpProblem(422, "the upload is invalid", {FIELD: [message]})


def boundary_of(mimetype: str, params: dict[str, str]) -> bytes:
    """The multipart boundary of a request (415 not multipart, 400 no usable boundary)."""
    if mimetype != "multipart/form-data":
        raise HttpProblem(415, "send the file as multipart/form-data with one part named 'file'")
    boundary = params.get("boundary", "")
    if not 1 <= len(boundary) <= 70 or not boundary.isascii() or not boundary.isprintable():
        raise HttpProblem(400, "the multipart/form-data Content-Type needs a boundary of 1 to 70 ASCII characters")
    return boundary.encode("ascii")


def receive(stream: BinaryIO, boundary: bytes, content_length: int | None, store: BlobStore,
            max_bytes: int) -> Upload:
    """Read the body from ``stream``; returns the accepted upload (its writer still to be
    kept or aborted by the caller), or raises ``HttpProblem`` with nothing stored."""
    if content_length is not None and content_length > max_bytes + FRAMING_BYTES:
        raise _too_large(max_bytes)
    receiver = _Receiver(store, max_bytes)
    try:
        receiver.run(stream, boundary)
        return receiver.result()
    except BaseException:
        receiver.abort()
        raise


class _Receiver:
    def __init__(self, store: BlobStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.writer: BlobWriter | None = None
        self.filename = ""
        self.head = bytearray()
        self.text = sniff.TextEvidence()
        self.in_file = False
        self.body_bytes = 0
        self.verdict: sniff.Verdict | None = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None

    def run(self, stream: BinaryIO, boundary: bytes) -> None:
        reader = MultipartReader(boundary)
        while not reader.complete:
            chunk = stream.read(CHUNK)
            self.body_bytes += len(chunk)
            if self.body_bytes > self.max_bytes + FRAMING_BYTES:
                raise _too_large(self.max_bytes)
            try:
                if not chunk:
                    reader.finish()
                for event in reader.feed(chunk):
                    self._handle(event)
            except MalformedMultipart as exc:
                raise HttpProblem(400, f"the multipart body is malformed: {exc}") from None

    def _handle(self, event: Event) -> None:
        if isinstance(event, Part):
            if event.name != FIELD:
                self.in_file = False  # other parts are read and ignored
            elif event.filename is None:
                raise _invalid("the 'file' part must be a file (with a filename)")
            elif self.writer is not None:
                raise _invalid("send one file per request")
            else:
                self.filename = names.clean_filename(event.filename)
                self.writer = self.store.writer()
                self.in_file = True
        elif isinstance(event, Data):
            if self.in_file:
                self._write(event.data)
        elif isinstance(event, PartEnd):
            if self.in_file:
                self.in_file = False
                self._end_of_file()

    def _write(self, data: bytes) -> None:
        assert self.writer is not None
        if not data:
            return
        if self.writer.size + len(data) > self.max_bytes:
            raise _too_large(self.max_bytes)
        if len(self.head) < sniff.HEAD_BYTES:
            self.head += data[: sniff.HEAD_BYTES - len(self.head)]
            if len(self.head) >= sniff.HEAD_BYTES:
                self._check_head()
        self.text.feed(data)
        self.writer.write(data)

    def _check_head(self) -> None:
        # Refuse as soon as the first bytes prove a refused type; a text file is only
        # accepted once all its bytes have been seen.
        verdict = sniff.detect(bytes(self.head), self.filename)
        if not verdict.accepted:
            raise _unsupported(verdict)

    def _end_of_file(self) -> None:
        assert self.writer is not None
        if self.writer.size == 0:
            raise _invalid("the file is empty")
        self.text.finish()
        self.verdict = sniff.detect(bytes(self.head), self.filename, self.text)
        if not self.verdict.accepted:
            raise _unsupported(self.verdict)

    def result(self) -> Upload:
        if self.writer is None:
            raise _invalid("a part named 'file' holding the file is required")
        if self.verdict is None:
            raise HttpProblem(400, "the multipart body is malformed: the file part never ends")
        return Upload(self.writer, self.filename, self.verdict)
