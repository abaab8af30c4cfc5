"""The streaming multipart reader gives the same parts however the body is split."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.attachments.multipart import Data, MalformedMultipart, MultipartReader, Part, PartEnd

BOUNDARY = b"XyZ-boundary"


def encode(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b"preamble is ignored\r\n"
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition.encode() + b"\r\n\r\n" + data + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\nepilogue is ignored"


def read(body: bytes, cuts: list[int]) -> list[tuple[str, str | None, bytes]]:
    reader = MultipartReader(BOUNDARY)
    parts: list[list] = []
    edges = sorted({0, len(body), *[c % (len(body) + 1) for c in cuts]})
    for start, end in zip(edges, edges[1:], strict=False):
        for event in reader.feed(body[start:end]):
            if isinstance(event, Part):
                parts.append([event.name, event.filename, b""])
            elif isinstance(event, Data):
                parts[-1][2] += event.data
            elif isinstance(event, PartEnd):
                parts[-1] = tuple(parts[-1])
    reader.finish()
    return parts


# Bytes that look like the framing, to tempt the reader into cutting a part short.
TRICKY = st.sampled_from([b"\r", b"\n", b"\r\n", b"--", b"\r\n--", b"\r\n--" + BOUNDARY[:-1], b"XyZ", b"a", b"\x00"])


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.tuples(st.sampled_from(["file", "comment"]), st.one_of(st.none(), st.just("a.pdf")),
                             st.lists(TRICKY | st.binary(max_size=20), max_size=20).map(b"".join)),
                   max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_split_gives_the_same_parts(parts, cuts):
    assert read(encode(parts), cuts) == parts


@pytest.mark.parametrize("body", [
    b"",
    b"--" + BOUNDARY + b"\r\n\r\nno headers\r\n--" + BOUNDARY + b"--",
    b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--" + BOUNDARY + b"--",
    b"--" + BOUNDARY + b'\r\nContent-Disposition: attachment; name="file"\r\n\r\nx\r\n--' + BOUNDARY + b"--",
    b"--" + BOUNDARY + b"\r\nnot a header\r\n\r\nx\r\n--" + BOUNDARY + b"--",
    b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"\r\n\r\nnever closed',
    b"--" + BOUNDARY + b"garbage after the boundary\r\n",
    b"x" * 100_000,
])
def test_malformed(body):
    reader = MultipartReader(BOUNDARY)
    with pytest.raises(MalformedMultipart):
        reader.feed(body)
        reader.finish()
