"""The local platform's long-running services (``shipyard up``): started once, found again, restarted if gone.

A service that is still starting (the MLflow server migrating its store) is waited for, never
replaced: killed halfway through a migration, a store stays broken. A service holds its store's
lock for as long as it lives, so a second one never starts on the same store, and one the
process table lost is found by that lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shipyard.engine.registry import Registry
from shipyard.sdk import processes
from shipyard.sdk.errors import UserError
from shipyard.sdk.planes import LocalService, local_state_dir
from shipyard.sdk.processes import Process


@dataclass(frozen=True)
class Running:
    service: LocalService
    process: Process
    started_now: bool


def start_services(
    registry: Registry, root: Path, on_start: Callable[[LocalService], None] = lambda service: None
) -> list[Running]:
    """Every plugin's local service, running and healthy: the one already up is kept, one that died restarts.

    One still starting (an earlier ``up`` was interrupted) is waited for. One that hangs past
    its start-up, or died, is replaced once it has exited. A service keeps its port across
    restarts (two checkouts each remember their own), so its URL in a browser tab stays right.
    """
    state = local_state_dir(root)
    known = {p.name: p for p in processes.table(state)}
    running = []
    for service in registry.services:
        lock = processes.lock_file(state, service.name)
        found = known.get(service.name)
        if found is None or not processes.alive(found):
            if found is not None:
                processes.stop(found)  # exited: its record goes
            found = _found_by_lock(lock)
        if found is not None and processes.alive(found) and finish_starting(found):
            running.append(Running(service, found, started_now=False))
            continue
        on_start(service)
        if found is not None:
            processes.stop(found)  # hung past its start-up: replaced once it exited, on its port
        port = processes.port_for(state, service.name)
        process = processes.start(
            service.command(port, state),
            port,
            state_dir=state,
            name=service.name,
            health=service.health_path,
            lock=lock,
            env=service.env,
        )
        try:
            processes.wait_ready(process)
        except UserError as error:
            damaged = None if processes.alive(process) else service.diagnose(state, processes.output(process))
            if damaged is not None:
                processes.stop(process)  # exited: only its record is left
                raise damaged from error
            raise
        running.append(Running(service, process, started_now=True))
    return running


def finish_starting(process: Process) -> bool:
    """Whether ``process`` is healthy, once it finished starting if it still was (waited for, never interrupted)."""
    if processes.healthy(process):
        return True
    left = processes.starting_for(process)
    if left > 0:
        with contextlib.suppress(UserError):  # exited or hung: the caller sees it is not healthy
            processes.wait_ready(process, timeout_s=left)
    return processes.alive(process) and processes.healthy(process)


def stop_after_start(state: Path, process: Process, on_wait: Callable[[], None] = lambda: None) -> None:
    """Stop ``process``; one that keeps a service's store and is still starting finishes starting first.

    Stopped halfway through its start-up, the MLflow server leaves its store half-migrated.
    """
    keeps_store = processes.named_by(processes.lock_file(state, process.name)) == process
    starting = keeps_store and processes.alive(process) and processes.starting_for(process) > 0
    if starting and not processes.healthy(process):
        on_wait()
        finish_starting(process)
    processes.stop(process)


def _found_by_lock(lock: Path) -> Process | None:
    """The process holding a service's store that the process table lost: entered in it again."""
    found = processes.holder(lock)
    if found is not None:
        processes.remember(found)
    return found


def endpoints(registry: Registry, state: Path) -> dict[str, str]:
    """The URL of each plugin's local service that is running, from the process table.

    This is how every command (``up``, ``plan``, ``apply``, a plane's own verbs) finds the
    local platform's services: the same way, and without any environment variable.
    """
    wanted = {service.name for service in registry.services}
    return {p.name: p.url for p in processes.table(state) if p.name in wanted and processes.alive(p)}
