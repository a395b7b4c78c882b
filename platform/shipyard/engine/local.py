"""The local platform's long-running services (``shipyard up``): started once, found again, restarted if gone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shipyard.engine.registry import Registry
from shipyard.sdk import processes
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

    A service keeps its port across restarts (two checkouts each remember their own), so its
    URL in a browser tab stays right.
    """
    state = local_state_dir(root)
    known = {p.name: p for p in processes.table(state)}
    running = []
    for service in registry.services:
        found = known.get(service.name)
        if found is not None and processes.alive(found) and processes.healthy(found):
            running.append(Running(service, found, started_now=False))
            continue
        on_start(service)
        if found is not None:
            processes.stop(found)  # gone or not answering: replaced, on the port it had
        port = processes.port_for(state, service.name)
        process = processes.start(
            service.command(port, state), port, state_dir=state, name=service.name, health=service.health_path
        )
        processes.wait_ready(process)
        running.append(Running(service, process, started_now=True))
    return running


def endpoints(registry: Registry, state: Path) -> dict[str, str]:
    """The URL of each plugin's local service that is running, from the process table.

    This is how every command (``up``, ``plan``, ``apply``, a plane's own verbs) finds the
    local platform's services: the same way, and without any environment variable.
    """
    wanted = {service.name for service in registry.services}
    return {p.name: p.url for p in processes.table(state) if p.name in wanted and processes.alive(p)}
