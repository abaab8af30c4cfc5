"""Where the bytes live: a small blob-store interface and its default backend, a local
directory (``ATTACHMENTS_DIR``).

Blobs are content-addressed by their SHA-256, so identical files are stored once. An
upload is written to a temporary file in the store's own ``tmp/`` folder (same file
system), fsynced, then renamed into ``blobs/ab/abcd…`` — a reader sees a whole blob or
none, and a crash leaves at most a temporary file, which ``sweep_temporary`` removes.
Which blob is still used is the metadata's business (``records``), not the store's.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from eventlet import tpool

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobWriter(Protocol):
    """An upload in progress: bytes in, their size and SHA-256 out."""

    size: int

    def write(self, data: bytes) -> None: ...

    def sha256(self) -> str: ...

    def abort(self) -> None:
        """Forget what was written (nothing stays behind)."""


class BlobStore(Protocol):
    def writer(self) -> BlobWriter: ...

    def keep(self, writer: BlobWriter) -> str:
        """Store what ``writer`` received durably under its SHA-256 (idempotent); returns it."""

    def open(self, sha256: str) -> BinaryIO: ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None: ...

    def blobs(self) -> Iterator[tuple[str, datetime]]:
        """Every stored blob and when it was written."""

    def sweep_temporary(self, older_than: datetime) -> int:
        """Remove uploads abandoned before ``older_than``; returns how many."""


class LocalWriter:
    def __init__(self, tmp_dir: Path) -> None:
        self.path = tmp_dir / f"upload-{uuid.uuid4().hex}.part"
        self._file: BinaryIO | None = open(self.path, "xb")  # noqa: SIM115 - closed in keep/abort
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        assert self._file is not None, "write after keep or abort"
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self, durable: bool) -> None:
        if self._file is None:
            return
        try:
            if durable:
                self._file.flush()
                # fsync blocks; in a real OS thread it does not stop the other green threads.
                tpool.execute(os.fsync, self._file.fileno())
        finally:
            self._file.close()
            self._file = None

    def abort(self) -> None:
        self.close(durable=False)
        self.path.unlink(missing_ok=True)


class LocalDirectoryStore:
    """Blobs under ``root/blobs/<2 hex>/<sha256>``; uploads in progress under ``root/tmp``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.tmp_dir = self.root / "tmp"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not SHA256.match(sha256):
            raise ValueError(f"not a SHA-256: {sha256!r}")
        return self.blob_dir / sha256[:2] / sha256

    def writer(self) -> LocalWriter:
        return LocalWriter(self.tmp_dir)

    def keep(self, writer: BlobWriter) -> str:
        assert isinstance(writer, LocalWriter)
        sha256 = writer.sha256()
        writer.close(durable=True)
        target = self.path(sha256)
        target.parent.mkdir(exist_ok=True)
        # Same bytes, same name: replacing an existing blob changes nothing a reader sees.
        os.replace(writer.path, target)
        _fsync_dir(target.parent)
        return sha256

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path(sha256), "rb")  # noqa: SIM115 - the response closes it

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def blobs(self) -> Iterator[tuple[str, datetime]]:
        for sub in self.blob_dir.iterdir():
            if not sub.is_dir():
                continue
            for entry in sub.iterdir():
                if SHA256.match(entry.name):
                    yield entry.name, _mtime(entry)

    def temporary_files(self) -> list[Path]:
        return sorted(self.tmp_dir.iterdir())

    def sweep_temporary(self, older_than: datetime) -> int:
        removed = 0
        for entry in self.tmp_dir.iterdir():
            if entry.name.endswith(".part") and _mtime(entry) < older_than:
                entry.unlink(missing_ok=True)
                removed += 1
        return removed


def _mtime(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return datetime.now(UTC)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
