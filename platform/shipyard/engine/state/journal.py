"""The append-only record of what applies did: one object per entry, never rewritten.

Entries live under ``journal/<plan hash>/`` (lock takeovers and unlocks under
``journal/lock/``), named so they sort by time. A crashed apply resumes from the ``done``
entries of its plan; a concurrent reader never sees half an entry.

``SHIPYARD_TEST_KILL_AT`` (tests only) makes the journal SIGKILL its own process at a change
boundary, which is how the kill-point harness (``tests/killpoints.py``) crashes an apply at
every boundary without sleeps: ``k`` (the k-th boundary of this process, counting before
begin, after begin and after done of each change), or ``<point>:<key part>`` with point
``before-begin``, ``after-begin`` or ``after-done``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote, unquote

from shipyard.engine.state.identity import RunIdentity
from shipyard.engine.state.store import ObjectStore
from shipyard.sdk.errors import InternalError, UserError
from shipyard.sdk.killpoints import KILL_VARIABLE

Event = Literal["start", "begin", "done", "failed", "complete", "stage", "takeover", "unlock"]
KillPoint = Literal["before-begin", "after-begin", "after-done"]

LOCK_EVENTS = "lock"


class Journal:
    def __init__(self, store: ObjectStore, run: RunIdentity, environ: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.run = run
        self._seq = itertools.count()
        self._kill = _KillSwitch((environ or {}).get(KILL_VARIABLE, ""))

    def record(self, plan_hash: str, event: Event, key: str = "", detail: str = "") -> None:
        if event == "begin":
            self._kill.boundary("before-begin", key)
        entry: dict[str, Any] = {"at": time.time(), "plan": plan_hash, "event": event, "owner": self.run.owner}
        if key:
            entry["key"] = key
        if detail:
            entry["detail"] = detail
        if event in {"start", "takeover", "unlock"}:
            entry["run"] = self.run.to_dict()
        # The event and key are in the name too: resuming lists names and reads no entry.
        stamp = f"{time.time_ns():020d}-{self.run.pid}-{next(self._seq):06d}"
        name = f"journal/{plan_hash or LOCK_EVENTS}/{stamp}.{event}.{quote(key, safe='')}.json"
        if self.store.create(name, json.dumps(entry, sort_keys=True).encode()) is None:
            raise InternalError(f"journal entry {self.store.where(name)} already exists; entries are never rewritten")
        if event in {"begin", "done"}:
            self._kill.boundary("after-begin" if event == "begin" else "after-done", key)

    def entries(self, plan_hash: str) -> list[dict[str, Any]]:
        """Every entry of ``plan_hash`` (or of the lock, for ""), oldest first."""
        found = []
        for name in self.store.names(f"journal/{plan_hash or LOCK_EVENTS}/"):
            stored = self.store.get(name)
            if stored is None:
                continue
            try:
                entry = json.loads(stored.data)
                if not isinstance(entry, dict) or "event" not in entry:
                    raise ValueError("not an object with an 'event'")
            except ValueError as error:
                raise UserError(
                    f"the journal entry {self.store.where(name)} is corrupted ({error})",
                    hint="Shipyard never rewrites an entry: restore it from the bucket's versions, or move it aside "
                    "to lose that record",
                ) from error
            found.append(entry)
        return found

    def events(self, plan_hash: str) -> list[tuple[str, str]]:
        """``(event, key)`` of every entry of ``plan_hash``, oldest first, from the names alone."""
        found = []
        for name in self.store.names(f"journal/{plan_hash or LOCK_EVENTS}/"):
            parts = name.rsplit("/", 1)[-1].split(".")
            if len(parts) == 4:
                found.append((parts[1], unquote(parts[2])))
        return found

    def done(self, plan_hash: str, *, unfinished_run: bool = False) -> set[str]:
        """Keys whose change in this plan finished (before a crash, for instance).

        With ``unfinished_run``, only those of a run of the plan that did not complete: a
        plan met again after it completed means the target went back (a stopped model
        server, say), and its changes are due again.
        """
        finished: set[str] = set()
        for event, key in self.events(plan_hash):
            if event == "done":
                finished.add(key)
            elif event == "complete" and unfinished_run:
                finished.clear()
        return finished


class _KillSwitch:
    def __init__(self, spec: str) -> None:
        self.count = 0
        self.at: int | None = None
        self.point = ""
        self.key_part = ""
        if spec.isdigit():
            self.at = int(spec)
        elif ":" in spec:
            self.point, self.key_part = spec.split(":", 1)

    def boundary(self, point: KillPoint, key: str) -> None:
        self.count += 1
        if self.count == self.at or (point == self.point and self.key_part in key):
            os.kill(os.getpid(), signal.SIGKILL)
