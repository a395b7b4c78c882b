"""Who is applying: the identity a lock, a journal entry and ``shipyard apply``'s first line carry."""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RunIdentity:
    """One apply: who, where (host and process), which CI run, from which commit."""

    owner: str
    host: str
    pid: int
    started: float  # the process's start time: a PID reused by another process is not this run
    run_url: str = ""
    commit: str = ""

    def describe(self) -> str:
        where = self.run_url or f"pid {self.pid} on {self.host}"
        commit = f" at {self.commit[:12]}" if self.commit else ""
        return f"{self.owner} ({where}){commit}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def current_run(environ: Mapping[str, str], commit: str = "") -> RunIdentity:
    """This process's identity; in GitHub Actions, the actor and the run's URL."""
    run_url = ""
    if all(environ.get(v) for v in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")):
        run_url = (
            f"{environ['GITHUB_SERVER_URL']}/{environ['GITHUB_REPOSITORY']}/actions/runs/{environ['GITHUB_RUN_ID']}"
        )
    host = socket.gethostname()
    return RunIdentity(
        owner=environ.get("GITHUB_ACTOR") or _user(),
        host=host,
        pid=os.getpid(),
        started=_process_started(os.getpid()),
        run_url=run_url,
        commit=commit,
    )


def _user() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _process_started(pid: int) -> float:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return time.time()


def process_alive(pid: int, started: float) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs on this host."""
    import psutil

    try:
        return abs(float(psutil.Process(pid).create_time()) - started) < 1.0
    except psutil.Error:
        return False
