"""Values computed from files, kept by the digest of those files: how planning reuses what did not change.

A plane declares the inputs of each part of its desired state (``Plane.units``: a team's folder
and specs, a stack's file, the facts it reads); the engine keeps that part's Resources and
findings under the digest of those inputs, and a plane may keep its own slow intermediate
results the same way (``DesiredContext.cache``: the features plane's Feast parses). A digest
covers the bytes of every input file, the facts, the environment, and the version of the
code that computes it (Shipyard's own source and the libraries the plane names), so an entry
is only ever found again for the same inputs and the same code. The folder
(``.shipyard/cache/``) is safe to delete; an entry that does not read back is a miss.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.sdk.store import private_dir

#: Folders a digest never reads: what Python and tools write beside the code, not inputs.
SKIPPED = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})


@dataclass(frozen=True)
class Unit:
    """A part of a plane's desired state (one team's, one stack's) and everything it is computed from.

    ``paths`` are repository-relative files or folders (a folder: every file below it); a path
    that does not exist counts as absent, so creating it changes the digest. ``facts`` are the
    pinned facts this part reads (JSON-able). Two units with equal inputs must give equal
    Resources: that is what lets a plan reuse one. ``volatile``: its check's findings also depend
    on the time (a freshness expectation on live data), so its check runs on every plan while its
    Resources are reused.
    """

    scope: str
    paths: tuple[str, ...] = ()
    facts: Any = None
    volatile: bool = False


@dataclass
class Cache:
    """Digests of inputs, and values by digest: in memory always, and in ``folder`` when it is given.

    ``version`` names the code the values come from; it is part of every digest.
    """

    folder: Path | None
    version: str
    _values: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _files: dict[tuple[Path, int, int], str] = field(default_factory=dict, repr=False)

    def digest(self, root: Path, paths: Iterable[str], extra: Any = None) -> str:
        """One digest of the files at ``paths`` under ``root`` (names and bytes), ``extra`` and the version."""
        import hashlib  # here, not at the top: every `shipyard` command imports the SDK, few plan

        found = hashlib.sha256(self.version.encode())
        for path in sorted(set(paths)):
            found.update(f"\0{path}\0".encode())
            for name, digest in self._tree(root, path):
                found.update(f"{name}={digest};".encode())
        found.update(json.dumps(extra, sort_keys=True, separators=(",", ":"), default=str).encode())
        return found.hexdigest()

    def get(self, namespace: str, digest: str) -> Any | None:
        """The value kept for ``digest``, or None."""
        key = (namespace, digest)
        if key not in self._values and self.folder is not None:
            try:
                self._values[key] = json.loads((self.folder / namespace / f"{digest}.json").read_text("utf-8"))
            except (OSError, ValueError):
                return None  # absent, or a torn or foreign file: computed again and rewritten
        return self._values.get(key)

    def put(self, namespace: str, digest: str, value: Any) -> None:
        """Keep ``value`` (JSON-able) for ``digest``; written whole or not at all."""
        self._values[(namespace, digest)] = value
        if self.folder is None:
            return
        import tempfile

        folder = private_dir(self.folder / namespace)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(value, handle, separators=(",", ":"))
            os.replace(temporary, folder / f"{digest}.json")
        except OSError:
            Path(temporary).unlink(missing_ok=True)  # a full or read-only disk costs the reuse, never the plan

    def _tree(self, root: Path, path: str) -> list[tuple[str, str]]:
        where = root / path
        if where.is_file():
            return [(path, self._file(where))]
        if not where.is_dir():
            return [(path, "absent")]
        found = []
        for folder, names, files in os.walk(where):
            names[:] = sorted(n for n in names if n not in SKIPPED)
            for name in sorted(files):
                if not name.endswith(".pyc"):
                    file = Path(folder) / name
                    found.append((file.relative_to(root).as_posix(), self._file(file)))
        return found

    def _file(self, path: Path) -> str:
        # Read once per process while it stays the same file: several planes' units share a Team spec.
        status = path.stat()
        key = (path, status.st_mtime_ns, status.st_size)
        if key not in self._files:
            import hashlib

            self._files[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._files[key]
