"""Verbs of the local platform: ``up`` (everything, on this machine), ``status`` and ``down``."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import click

from shipyard.cli.app import Session, pass_session
from shipyard.cli.output import EXIT_INTERNAL, EXIT_USER, FORMAT_HELP, change_line, console, report
from shipyard.cli.plans import stage_line


@click.command()
@pass_session
def up(session: Session) -> None:
    """Bring the whole platform up on this machine, through the same plan and apply as the cloud.

    Starts the local services (the MLflow tracking server and UI) or finds them running,
    validates the repo, writes synthetic data for teams that have none, then plans and
    applies every plane to the local target: Feast, the data checks, training pipelines,
    then, as stage 2, promotion of what training registered through the gates and the
    model servers. Then it sends each model a smoke request (features from the online
    store, then a prediction) and prints a summary.

    Run it again at any time: it does only what changed, and restarts a service or model
    server that stopped. A team whose change fails does not stop the other teams; the
    summary says what failed, and the exit code is 3 (1 when only a smoke request failed).
    """
    from datetime import UTC, datetime

    from shipyard.cli.summary import summary
    from shipyard.engine.up import up as run_up

    out = console()
    steps = _Spinners(out)
    done = run_up(
        session.registry,
        session.root,
        steps,
        on_change=lambda change: click.echo(change_line(change)),
        on_stage=lambda stage: click.echo(stage_line(stage)),
        environ=os.environ,
    )
    report(done.findings, "text")  # warnings; errors stopped run_up
    for running in done.services:
        verb = "started" if running.started_now else "running"
        click.echo(f"{running.service.name}: {verb} at {running.process.url}")
    for line in done.prepared:
        click.echo(line)
    if done.applied is not None:
        from shipyard.cli.plans import applied_line

        click.echo(applied_line(done.applied, "local"))
    out.print(summary(done, steps.seconds, datetime.now(UTC)))
    if done.failed:
        raise click.exceptions.Exit(EXIT_INTERNAL)  # a failed apply, as for `shipyard apply`
    if not done.ok:
        raise click.exceptions.Exit(EXIT_USER)


class _Spinners:
    """``up``'s steps, each under a spinner, timed for the summary (and the benchmark that reads it)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def run(self, name: str, doing: str) -> Iterator[Callable[[str], None]]:
        import time

        started = time.perf_counter()
        try:
            with self.out.status(doing) as progress:
                yield progress.update
        finally:
            self.seconds[name] = time.perf_counter() - started
        self.out.print(f"[green]✓[/] {name} ({self.seconds[name]:.1f} s)")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help=FORMAT_HELP)
@pass_session
def status(session: Session, fmt: str) -> None:
    """List the local platform's processes: what each is, PID, URL, and whether it is up and healthy.

    Exits 1 when one of them has stopped or does not answer its health check.
    """
    from shipyard.sdk import processes
    from shipyard.sdk.planes import local_state_dir

    rows = []
    for process in processes.table(local_state_dir(session.root)):
        running = processes.alive(process)
        rows.append((process, running, running and processes.healthy(process)))
    if fmt == "json":
        found = [p.to_dict() | {"url": p.url, "alive": running, "healthy": ok} for p, running, ok in rows]
        click.echo(json.dumps({"processes": found}, indent=2))
    elif not rows:
        click.echo("Nothing runs locally. `shipyard up` brings the platform up.")
    else:
        from rich.table import Table

        shown = Table("process", "pid", "url", "state", box=None, pad_edge=False)
        for process, running, ok in rows:
            state = "healthy" if ok else "not answering" if running else "exited"
            shown.add_row(process.name, str(process.pid), process.url, state)
        console().print(shown)
    if any(not ok for _, _, ok in rows):
        raise click.exceptions.Exit(EXIT_USER)


@click.command()
@click.option("--purge", is_flag=True, help="Also delete .shipyard/ (local state, MLflow data, logs, plans).")
@pass_session
def down(session: Session, purge: bool) -> None:
    """Stop every process the local platform started, and nothing else.

    Each is stopped only if its PID still belongs to the process Shipyard started (PID and
    start time match): SIGTERM, then SIGKILL after 10 s. A service still starting (the MLflow
    server migrating its store) finishes starting first: stopped halfway, its store breaks.
    """
    import shutil

    from shipyard.engine.local import stop_after_start
    from shipyard.sdk import processes
    from shipyard.sdk.planes import STATE_DIR, local_state_dir

    state = local_state_dir(session.root)
    for process in processes.table(state):
        was_up = processes.alive(process)

        def waiting(process: processes.Process = process) -> None:
            click.echo(f"waiting for {process.name} (pid {process.pid}) to finish starting, not to break its store")

        stop_after_start(state, process, waiting)
        click.echo(f"{'stopped' if was_up else 'forgot (already gone)'}: {process.name} (pid {process.pid})")
    if purge:
        shutil.rmtree(session.root / STATE_DIR, ignore_errors=True)
        click.echo(f"removed {STATE_DIR}/")
