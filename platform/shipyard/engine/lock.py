"""One applier per target at a time: a lock file with an owner and a lease."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from shipyard.sdk.errors import LockHeld

DEFAULT_LEASE_S = 30 * 60


class TargetLock:
    """Held for the whole of an apply. A holder that died (same host, PID gone) or
    whose lease ran out is taken over; a live one makes ``apply`` refuse."""

    def __init__(self, path: Path, owner: str, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.path = path
        self.owner = owner
        self.lease_s = lease_s
        self._mine: dict[str, Any] = {}

    def __enter__(self) -> TargetLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._mine = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired": time.time(),
            "expires": time.time() + self.lease_s,
        }
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_abandoned()
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(self._mine, handle)
            return self
        raise LockHeld(f"could not take the lock {self.path}")  # pragma: no cover - lost a race twice

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._read() == self._mine:
            self.path.unlink(missing_ok=True)

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _take_over_if_abandoned(self) -> None:
        holder = self._read()
        if holder is not None and not _abandoned(holder):
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("acquired", 0)))
            who = f"{holder.get('owner')} (pid {holder.get('pid')} on {holder.get('host')})"
            raise LockHeld(
                f"target is being applied by {who} since {since}",
                hint=f"wait for it to finish; if it is gone, remove {self.path}",
            )
        # Rename first: of several racing takers only one rename succeeds.
        try:
            os.replace(self.path, self.path.with_suffix(f".stale.{os.getpid()}"))
            self.path.with_suffix(f".stale.{os.getpid()}").unlink()
        except FileNotFoundError:
            pass


def _abandoned(holder: dict[str, Any]) -> bool:
    if holder.get("expires", 0) < time.time():
        return True
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False
