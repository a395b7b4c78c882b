"""A folder of Resources as JSON files: how planes keep the ``local`` target's state."""

from __future__ import annotations

import json
import os
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from shipyard.sdk.model import Resource


class ResourceStore:
    """One file per Resource key, written atomically (write, fsync, rename).

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
        self.folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps(resource.to_dict() | {"source": None}, indent=2, sort_keys=True)
        fd, temp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
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
