"""A streaming ``multipart/form-data`` reader (RFC 7578, RFC 2046 §5.1): bytes in, in
whatever pieces the socket gives, events out; memory bounded by the largest piece fed
plus the delimiter, whatever the size of a part.

(Werkzeug's sans-IO ``MultipartDecoder`` was tried first: when a read ends inside the
closing delimiter it can hand a stray CR over as file data, and such a split is bound
to happen to some upload. This one only needs CRLF line breaks, as RFC 7578 requires and
browsers, curl and HTTP libraries send.)
"""

from __future__ import annotations

from dataclasses import dataclass

from werkzeug.http import parse_options_header

MAX_HEADER_BYTES = 16 * 1024  # the headers of one part
MAX_PREAMBLE_BYTES = 64 * 1024  # bytes allowed before the first delimiter


class MalformedMultipart(ValueError):
    """The body is not multipart/form-data with this boundary (HTTP 400)."""


@dataclass(frozen=True)
class Part:
    """A part begins: its form field name and, for a file, its file name as sent."""

    name: str
    filename: str | None


@dataclass(frozen=True)
class Data:
    """Some bytes of the current part."""

    data: bytes


@dataclass(frozen=True)
class PartEnd:
    """The current part is complete."""


@dataclass(frozen=True)
class End:
    """The closing delimiter was read: the body is complete."""


Event = Part | Data | PartEnd | End

PREAMBLE, AFTER_DELIMITER, HEADERS, BODY, EPILOGUE = range(5)


class MultipartReader:
    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"\r\n--" + boundary
        # The first delimiter may open the body without a preceding CRLF.
        self.buffer = bytearray(b"\r\n")
        self.state = PREAMBLE
        self.preamble_bytes = 0

    @property
    def complete(self) -> bool:
        return self.state == EPILOGUE

    def feed(self, data: bytes) -> list[Event]:
        """The events that ``data`` completes."""
        if self.state == EPILOGUE:
            return []  # an epilogue is ignored (RFC 2046)
        self.buffer += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def finish(self) -> None:
        """The body ended: it must have been closed by its final delimiter."""
        if self.state != EPILOGUE:
            raise MalformedMultipart("the body ends before its closing boundary")

    def _step(self, events: list[Event]) -> bool:
        """Advance once if the buffer allows; False when more bytes are needed."""
        buffer = self.buffer
        if self.state == PREAMBLE:
            found = buffer.find(self.delimiter)
            if found < 0:
                keep = len(self.delimiter) - 1
                self.preamble_bytes += max(0, len(buffer) - keep)
                if self.preamble_bytes > MAX_PREAMBLE_BYTES:
                    raise MalformedMultipart("no boundary found")
                del buffer[: max(0, len(buffer) - keep)]
                return False
            del buffer[: found + len(self.delimiter)]
            self.state = AFTER_DELIMITER
            return True
        if self.state == AFTER_DELIMITER:
            if len(buffer) < 2:
                return False
            if buffer.startswith(b"--"):
                self.state = EPILOGUE
                buffer.clear()
                return False
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) > 1024:
                    raise MalformedMultipart("a boundary line does not end")
                return False
            if buffer[:end].strip(b" \t"):
                raise MalformedMultipart("a boundary is followed by something else")
            del buffer[: end + 2]
            self.state = HEADERS
            return True
        if self.state == HEADERS:
            if buffer.startswith(b"\r\n"):
                raise MalformedMultipart("a part has no Content-Disposition header")
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise MalformedMultipart("a part's headers are too long")
                return False
            if end > MAX_HEADER_BYTES:
                raise MalformedMultipart("a part's headers are too long")
            events.append(_part(bytes(buffer[:end])))
            del buffer[: end + 4]
            self.state = BODY
            return True
        if self.state == BODY:
            found = buffer.find(self.delimiter)
            if found < 0:
                safe = len(buffer) - (len(self.delimiter) - 1)
                if safe > 0:
                    events.append(Data(bytes(buffer[:safe])))
                    del buffer[:safe]
                return False
            if found:
                events.append(Data(bytes(buffer[:found])))
            events.append(PartEnd())
            del buffer[: found + len(self.delimiter)]
            self.state = AFTER_DELIMITER
            return True
        return False


def _part(block: bytes) -> Part:
    headers: dict[str, str] = {}
    last = None
    for raw in block.split(b"\r\n"):
        line = raw.decode("utf-8", "replace")
        if line[:1] in (" ", "\t") and last is not None:  # a folded header continues
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise MalformedMultipart("a part header is not 'Name: value'")
        last = name.strip().lower()
        headers[last] = value.strip()
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise MalformedMultipart("a part has no Content-Disposition header")
    # Browsers and HTTP libraries write file names the HTML way (a quote as %22, a
    # backslash as itself), not as RFC quoted-strings: a backslash is a Windows path
    # separator ("C:\\Users\\a\\doc.pdf"), not an escape.
    kind, options = parse_options_header(disposition.replace("\\", "/"))
    if kind.lower() != "form-data" or "name" not in options:
        raise MalformedMultipart("a part's Content-Disposition is not form-data with a name")
    return Part(options["name"], options.get("filename"))
