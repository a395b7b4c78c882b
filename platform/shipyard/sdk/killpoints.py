"""The kill-point harness: crash an apply at every change boundary and prove the re-run converges.

For plugin authors and Shipyard's own tests. An apply run with ``SHIPYARD_TEST_KILL_AT=k``
SIGKILLs itself at the k-th change boundary (before a change begins, after it begins, after
it is done; the journal counts them), so a sweep needs no sleeps and hits every boundary
exactly. Example, with the plugin's own reset and end-state check::

    points = sweep(
        ["shipyard", "--repo", str(repo), "apply"],
        env=os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"},
        reset=lambda: restore(repo),
        check=lambda k: assert_same_end_state(repo, baseline),
    )

A killed apply's own process tree must die with it: ``kill_at`` fails when any process of
the killed apply's session is still running after a grace period (an orphaned worker that
finishes its work after the crash is how duplicates happen).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: The variable the journal reads (``engine/state/journal.py``), defined once here; tests only.
KILL_VARIABLE = "SHIPYARD_TEST_KILL_AT"


def kill_at(
    command: Sequence[str],
    point: int | str,
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout_s: float = 600,
    grace_s: float = 10,
) -> bool:
    """Run ``command`` set to die at ``point``; True when it was killed there, False when it finished first.

    Raises AssertionError when it failed otherwise, or left processes of its session running.
    """
    with subprocess.Popen(
        list(command),
        env={**env, KILL_VARIABLE: str(point)},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session: whatever it started and left behind is found by session id
    ) as child:
        _, stderr = child.communicate(timeout=timeout_s)
    left = _session_members(child.pid, grace_s)
    if left:
        raise AssertionError(f"killed at {point}, the apply left processes running: {left}")
    if child.returncode == -signal.SIGKILL:
        return True
    if child.returncode != 0:
        raise AssertionError(f"the apply set to die at {point} failed instead ({child.returncode}):\n{stderr}")
    return False


def run_to_completion(command: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None) -> str:
    """Run ``command`` without a kill point; its output. AssertionError when it fails."""
    done = subprocess.run(list(command), env=dict(env), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"the re-run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def sweep(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    reset: Callable[[], None],
    check: Callable[[int], None],
    cwd: Path | None = None,
    first: int = 1,
    limit: int = 1000,
) -> int:
    """Kill at boundary k = first, first + 1, ... then re-run to completion and ``check(k)``.

    ``reset`` puts the target back where the first run starts. The sweep ends at the first k
    the apply finishes without reaching (it has fewer boundaries); returns how many kill
    points were tried.
    """
    for point in range(first, first + limit):
        reset()
        if not kill_at(command, point, env=env, cwd=cwd):
            return point - first
        run_to_completion(command, env=env, cwd=cwd)
        check(point)
    raise AssertionError(f"the apply still had kill points after {limit}")


def _session_members(session: int, grace_s: float) -> list[str]:
    """Processes still in ``session`` after up to ``grace_s`` (they get that long to die)."""
    import psutil

    deadline = time.monotonic() + grace_s
    while True:
        left = []
        for process in psutil.process_iter(["pid", "cmdline", "status"]):
            try:
                if os.getsid(process.pid) == session and process.info["status"] != psutil.STATUS_ZOMBIE:
                    left.append(" ".join((process.info["cmdline"] or [])[:4]))
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)
