"""Measure what an upload and a download of a big file cost: MB/s each way and, given
the service's process id, its peak memory (Linux: ``VmHWM``, reset through
``/proc/<pid>/clear_refs`` first, so it is the peak of this transfer).

The file is generated on the fly (a PDF header, then pseudo-random bytes that do not
compress), streamed with a known Content-Length, never held whole in memory on either
side; the download is checked against its SHA-256.

    python -m services.attachments.transfer --url http://localhost:8003 --size 50M --pid 12345

The service must accept the size: run it with ``MAX_ATTACHMENT_BYTES`` above it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import requests

BLOCK = 1024 * 1024


class GeneratedFile:
    """``size`` bytes made on demand: ``%PDF-1.4`` then a repeated random block."""

    def __init__(self, size: int, seed: int = 6) -> None:
        self.size = size
        self.position = 0
        self.block = b"%PDF-1.4\n" + random.Random(seed).randbytes(BLOCK - 9)
        self.sha256 = hashlib.sha256()

    def __len__(self) -> int:
        return self.size - self.position

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.position
        n = min(n, self.size - self.position)
        offset = self.position % BLOCK
        data = self.block[offset:offset + min(n, BLOCK - offset)]
        self.position += len(data)
        self.sha256.update(data)
        return data


class MultipartBody:
    """A one-part ``multipart/form-data`` body around a ``GeneratedFile``, read in pieces
    (a file-like object with a length: requests sends it with a Content-Length)."""

    def __init__(self, file: GeneratedFile, filename: str = "bench.pdf") -> None:
        self.boundary = uuid4().hex
        self.head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
                     f"Content-Type: application/pdf\r\n\r\n").encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.file = file
        self.length = len(self.head) + file.size + len(self.tail)
        self.sent_head = self.sent_tail = False

    def __len__(self) -> int:
        return self.length

    def read(self, n: int = -1) -> bytes:
        if not self.sent_head:
            self.sent_head = True
            return self.head
        data = self.file.read(n if n and n > 0 else BLOCK)
        if data:
            return data
        if not self.sent_tail:
            self.sent_tail = True
            return self.tail
        return b""

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"


def peak_rss_reset(pid: int) -> None:
    """Reset the process's peak resident set size (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def measure_transfer(base_url: str, token: str, size: int, *, pid: int | None = None) -> dict[str, Any]:
    """Upload then download a generated file of ``size`` bytes through the attachments
    service at ``base_url``; MB/s each way, and the peak RSS of process ``pid`` if given."""
    headers = {"Authorization": f"Bearer {token}"}
    session = requests.Session()
    file = GeneratedFile(size)
    body = MultipartBody(file)
    baseline = None
    if pid is not None:
        peak_rss_reset(pid)
        baseline = peak_rss_mb(pid)
    started = time.perf_counter()
    response = session.post(f"{base_url}/api/v1/attachments", data=body, timeout=600,
                            headers={**headers, "Content-Type": body.content_type})
    upload_seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"upload refused: {response.status_code} {response.text[:300]}")
    uploaded = response.json()
    if uploaded["sha256"] != file.sha256.hexdigest() or uploaded["size"] != size:
        raise RuntimeError("the service stored other bytes than were sent")
    started = time.perf_counter()
    received = hashlib.sha256()
    length = 0
    with session.get(f"{base_url}/api/v1/attachments/{uploaded['id']}", headers=headers, stream=True,
                     timeout=600) as download:
        download.raise_for_status()
        for chunk in download.iter_content(256 * 1024):
            received.update(chunk)
            length += len(chunk)
    download_seconds = time.perf_counter() - started
    if length != size or received.hexdigest() != uploaded["sha256"]:
        raise RuntimeError("the download differs from the upload")
    megabytes = size / 1e6
    result: dict[str, Any] = {
        "size_bytes": size,
        "upload_seconds": round(upload_seconds, 3),
        "upload_mb_s": round(megabytes / upload_seconds, 1),
        "download_seconds": round(download_seconds, 3),
        "download_mb_s": round(megabytes / download_seconds, 1),
        "attachment_id": uploaded["id"],
    }
    if pid is not None:
        result["rss_before_mb"] = round(baseline or 0.0, 1)
        result["peak_rss_mb"] = round(peak_rss_mb(pid), 1)
    return result


def _size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:8003")
    parser.add_argument("--size", type=_size, default=_size("50M"))
    parser.add_argument("--pid", type=int, help="the attachments service's process, for its peak memory")
    parser.add_argument("--token", help="a bearer token (default: one signed with GUICHET_JWT_SECRET)")
    args = parser.parse_args()
    token = args.token
    if token is None:
        from shared.auth import issue_token
        from shared.config import Settings

        token = issue_token(Settings.from_env(os.environ), sub="bench", email="bench@guichet.example")
    sys.stdout.write(json.dumps(measure_transfer(args.url, token, args.size, pid=args.pid), indent=2) + "\n")


if __name__ == "__main__":
    main()
