"""An append-only record of what an apply did, so a crashed apply resumes without repeats."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Literal

Event = Literal["begin", "done", "failed", "complete", "stage"]


class Journal:
    """JSON lines: ``{"at", "plan", "key", "event", "owner"}``, flushed to disk per line."""

    def __init__(self, path: Path, owner: str) -> None:
        self.path = path
        self.owner = owner

    def record(self, plan_hash: str, event: Event, key: str = "", detail: str = "") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"at": time.time(), "plan": plan_hash, "key": key, "event": event, "owner": self.owner}
        if detail:
            entry["detail"] = detail
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def done(self, plan_hash: str, *, unfinished_run: bool = False) -> set[str]:
        """Keys whose change in this plan finished (before a crash, for instance).

        With ``unfinished_run``, only those of a run of the plan that did not complete: a
        plan met again after it completed means the target went back (a stopped model
        server, say), and its changes are due again.
        """
        finished: set[str] = set()
        if not self.path.exists():
            return finished
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash mid-write
            if entry.get("plan") != plan_hash:
                continue
            if entry.get("event") == "done":
                finished.add(entry["key"])
            elif entry.get("event") == "complete" and unfinished_run:
                finished.clear()
        return finished
