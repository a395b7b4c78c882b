"""Named objects with compare-and-swap: the one interface apply state needs, and its file home.

An object's ``tag`` names the exact content read (S3's ETag; a SHA-256 of the bytes on
disk), so a writer replaces or deletes only what it read and a concurrent writer loses
cleanly instead of overwriting.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shipyard.sdk.store import open_private, private_dir


@dataclass(frozen=True)
class Stored:
    data: bytes
    tag: str


class ObjectStore(Protocol):
    """What the lock, the journal and the last-applied record are written to."""

    def get(self, name: str) -> Stored | None:
        """The object, or None when there is none."""

    def create(self, name: str, data: bytes) -> str | None:
        """Write ``name`` only if it does not exist: its tag, or None when it already did."""

    def replace(self, name: str, data: bytes, tag: str) -> str | None:
        """Overwrite ``name`` only if it still has ``tag``: the new tag, or None when it moved or is gone."""

    def delete(self, name: str, tag: str) -> bool:
        """Remove ``name`` only if it still has ``tag``."""

    def put(self, name: str, data: bytes) -> None:
        """Write ``name`` whatever is there (callers hold the lock)."""

    def names(self, prefix: str) -> list[str]:
        """The names under ``prefix``, sorted."""

    def where(self, name: str = "") -> str:
        """Where ``name`` lives, for messages: a path or an s3:// URL."""


class FileStore:
    """Objects as files under ``root``; the local target's state.

    ``create`` writes a temporary file and links it into place: the object appears whole or
    not at all, so no reader ever sees an empty lock and mistakes it for an abandoned one.
    ``replace`` and ``delete`` compare and swap under an ``flock`` on ``root/.cas``. Every file
    is 0600 (``mkstemp``'s, kept by the link and the rename) and every folder 0700.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, name: str) -> Stored | None:
        try:
            data = (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        return Stored(data, _tag(data))

    def create(self, name: str, data: bytes) -> str | None:
        path = self.root / name
        with self._staged(path, data) as staged:
            try:
                os.link(staged, path)
            except FileExistsError:
                return None
        return _tag(data)

    def replace(self, name: str, data: bytes, tag: str) -> str | None:
        path = self.root / name
        with self._guard(), self._staged(path, data) as staged:
            current = self.get(name)
            if current is None or current.tag != tag:
                return None
            os.replace(staged, path)
        return _tag(data)

    def delete(self, name: str, tag: str) -> bool:
        with self._guard():
            current = self.get(name)
            if current is None or current.tag != tag:
                return False
            (self.root / name).unlink()
        return True

    def put(self, name: str, data: bytes) -> None:
        path = self.root / name
        with self._staged(path, data) as staged:
            os.replace(staged, path)

    def names(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in folder.rglob("*") if p.is_file() and ".tmp-" not in p.name)

    def where(self, name: str = "") -> str:
        return str(self.root / name)

    @contextlib.contextmanager
    def _staged(self, path: Path, data: bytes) -> Iterator[str]:
        """``data`` in a synced temporary file beside ``path`` (removed afterwards if still there)."""
        private_dir(path.parent)
        fd, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            yield staged
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        private_dir(self.root)
        with os.fdopen(open_private(self.root / ".cas", os.O_WRONLY | os.O_APPEND), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _tag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
