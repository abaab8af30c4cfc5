"""Reading a multipart upload from a stream: what is accepted, what is refused, and
that a refusal leaves nothing behind."""

import io

import pytest

from services.attachments import upload
from services.attachments.storage import LocalDirectoryStore
from shared.web import HttpProblem

BOUNDARY = b"----guichet-test-boundary"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


def part(name: str, data: bytes, filename: str | None = "note.pdf", content_type: str = "application/pdf") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"Content-Disposition: {disposition}\r\n" + (f"Content-Type: {content_type}\r\n" if filename else "")
    return b"--" + BOUNDARY + b"\r\n" + head.encode() + b"\r\n" + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY + b"--\r\n"


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read, like a slow socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.position = data, step, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.data[self.position:self.position + min(self.step, size if size > 0 else self.step)]
        self.position += len(chunk)
        return chunk


@pytest.fixture
def store(tmp_path):
    return LocalDirectoryStore(tmp_path)


def receive(store, data: bytes, max_bytes: int = 1_000_000, content_length: int | None = None, step: int | None = None):
    stream = Trickle(data, step) if step else io.BytesIO(data)
    return upload.receive(stream, BOUNDARY, content_length, store, max_bytes)


def nothing_left(store) -> bool:
    return not list(store.tmp_dir.iterdir()) and not list(store.blob_dir.iterdir())


@pytest.mark.parametrize("step", [None, 1, 7, 70_000])
def test_a_file_part_is_received_whatever_the_chunking(store, step):
    received = receive(store, body(part("comment", b"hello", None), part("file", PDF)), step=step)
    assert received.filename == "note.pdf"
    assert received.verdict.content_type == "application/pdf"
    assert received.writer.size == len(PDF)
    sha = store.keep(received.writer)
    assert store.open(sha).read() == PDF
    assert not list(store.tmp_dir.iterdir())


def test_the_file_may_contain_boundary_like_bytes(store):
    tricky = b"%PDF-1.4\n\r\n--" + BOUNDARY[:-1] + b"\r\n--\r\n" + b"x" * 100
    received = receive(store, body(part("file", tricky)), step=5)
    store.keep(received.writer)
    assert received.writer.size == len(tricky)


@pytest.mark.parametrize(("data", "status", "message"), [
    (body(part("comment", b"no file here", None)), 422, "a part named 'file'"),
    (body(), 422, "a part named 'file'"),
    (body(part("file", b"")), 422, "empty"),
    (body(part("file", b"plain", None)), 422, "must be a file"),
    (body(part("file", PDF), part("file", PDF)), 422, "one file"),
    (body(part("file", b"MZ\x90\x00" + b"\x00" * 20000, "photo.png")), 415, "Windows executable"),
    (body(part("file", b"MZ\x90\x00", "tiny.png")), 415, "Windows executable"),
    (b"this is not multipart at all", 400, "malformed"),
    (b"--" + BOUNDARY + b"\r\ngarbage without headers end", 400, "malformed"),
    (body(part("file", PDF))[:-30], 400, "malformed"),
    (b"--" + BOUNDARY + b"\r\nX: " + b"y" * 2_000_000, 400, "malformed"),
])
def test_refusals_leave_nothing(store, data, status, message):
    with pytest.raises(HttpProblem) as refused:
        receive(store, data, max_bytes=10_000_000)
    assert refused.value.status == status
    assert message in (refused.value.detail + str(refused.value.errors))
    assert nothing_left(store)


def test_over_the_limit_while_streaming_is_413_and_nothing_stays(store):
    with pytest.raises(HttpProblem) as refused:
        receive(store, body(part("file", PDF * 10)), max_bytes=len(PDF) * 5, step=4096)
    assert refused.value.status == 413
    assert nothing_left(store)


def test_exactly_the_limit_is_accepted(store):
    received = receive(store, body(part("file", PDF)), max_bytes=len(PDF))
    assert received.writer.size == len(PDF)
    received.writer.abort()


def test_a_declared_length_over_the_limit_is_refused_before_reading(store):
    stream = io.BytesIO(b"never read")
    with pytest.raises(HttpProblem) as refused:
        upload.receive(stream, BOUNDARY, 50_000_000, store, 1_000_000)
    assert refused.value.status == 413
    assert stream.tell() == 0


@pytest.mark.parametrize(("mimetype", "params", "status"), [
    ("application/json", {}, 415),
    ("application/octet-stream", {}, 415),
    ("multipart/form-data", {}, 400),
    ("multipart/form-data", {"boundary": "x" * 71}, 400),
])
def test_content_types(mimetype, params, status):
    with pytest.raises(HttpProblem) as refused:
        upload.boundary_of(mimetype, params)
    assert refused.value.status == status
