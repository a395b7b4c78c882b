"""A folder of Resources as JSON files: how planes keep the ``local`` target's state."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from shipyard.sdk.model import Resource

#: Shipyard's state is its owner's alone, whatever the umask: folders 0700, files 0600.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(folder: Path) -> Path:
    """``folder``, made with each missing parent 0700 (``os.makedirs`` makes only the last one so)."""
    missing = []
    here = folder
    while not here.is_dir():
        missing.append(here)
        here = here.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made meanwhile by another writer (or not a folder: what is written there says so)
        path.chmod(PRIVATE_DIR)  # the umask may have taken bits off ``mode``
    return folder


def open_private(path: Path, flags: int) -> int:
    """A descriptor of ``path`` opened with ``flags`` (``os.O_*``), created if missing; the file is 0600.

    A file found with looser bits is closed to 0600 too (one of another user's stays as it is).
    """
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, text: str) -> None:
    """``text`` as the whole of ``path`` (0600), its folders made by ``private_dir``."""
    private_dir(path.parent)
    with os.fdopen(open_private(path, os.O_WRONLY | os.O_TRUNC), "w", encoding="utf-8") as handle:
        handle.write(text)


class ResourceStore:
    """One file per Resource key, written atomically (write, fsync, rename), 0600 in a 0700 folder.

    Example::

        store = ResourceStore(target.state_dir / "tenancy")
        store.put(change.desired)
        list(store)  # what ``observe`` returns
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _file(self, key: str) -> Path:
        return self.folder / (urllib.parse.quote(key, safe="") + ".json")

    def put(self, resource: Resource) -> None:
        private_dir(self.folder)
        data = json.dumps(resource.to_dict() | {"source": None}, indent=2, sort_keys=True)
        fd, temp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")  # 0600, as the file it becomes
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self._file(resource.key))

    def delete(self, key: str) -> None:
        self._file(key).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[Resource]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.json")):
            yield Resource.from_dict(json.loads(path.read_text(encoding="utf-8")))
