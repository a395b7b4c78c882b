"""Verbs over a target's state: ``drift`` (what moved since the last apply) and ``unlock``."""

from __future__ import annotations

import click

from shipyard.cli.app import Session, pass_session, remember_format
from shipyard.cli.output import EXIT_CHANGES


@click.command()
@click.option("--target", "-t", default="local", show_default=True, help="local or an environment.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    help="text for terminals, markdown for an issue body (its first line is a stable marker), json for machines.",
    callback=remember_format,
)
@pass_session
def drift(session: Session, target: str, fmt: str) -> None:
    """Report how the target drifted from its last apply, in two groups.

    \b
    Changed outside Shipyard: live differs from what was last applied (an MLflow
      alias moved by hand, a stopped model server, a Feast object applied from a
      laptop, a deleted namespace).
    Not yet applied: HEAD differs from what was last applied (merged, not applied).

    Each drifted field is listed with both sides. Exit 0: no drift; exit 2: drift.
    There is no --fix: the fix is `shipyard plan` and `shipyard apply`.

    \b
    Examples:
      shipyard drift                         # the local platform
      shipyard drift -t prod -f markdown     # an issue body for the scheduled drift check
    """
    from shipyard.core.render.drift import render_drift_json, render_drift_markdown, render_drift_text
    from shipyard.engine.drift import drift as find_drift
    from shipyard.engine.targets import parse_target

    found = find_drift(session.registry, session.root, parse_target(target))
    render = {"text": render_drift_text, "markdown": render_drift_markdown, "json": render_drift_json}[fmt]
    click.echo(render(found.target, found.outside, found.pending), nl=False)
    if found.found:
        raise click.exceptions.Exit(EXIT_CHANGES)


@click.command()
@click.option("--target", "-t", default="local", show_default=True, help="local or an environment.")
@click.option("--reason", required=True, help="Why the lock is broken; journaled with who broke it.")
@pass_session
def unlock(session: Session, target: str, reason: str) -> None:
    """Break the target's apply lock, even a live one, and journal who did it and why.

    Use it when an apply was killed and cannot release its lock (a cancelled CI
    runner). An apply still running notices before its next change and stops.
    An expired lock needs no unlock: the next apply takes it over.

    \b
    Example:
      shipyard unlock -t prod --reason "runner 1234 was cancelled mid-apply"
    """
    import os

    from shipyard.engine.revisions import head_commit
    from shipyard.engine.state.home import open_store
    from shipyard.engine.state.identity import current_run
    from shipyard.engine.state.journal import Journal
    from shipyard.engine.state.lease import break_lock
    from shipyard.engine.targets import parse_target

    ref = parse_target(target)
    store = open_store(ref.resolve(session.root), session.specs())
    run = current_run(os.environ, head_commit(session.root))
    holder = break_lock(store, Journal(store, run), reason)
    if holder is None:
        click.echo(f"{ref.name} was not locked; nothing to do.")
    else:
        click.echo(f"Broke the lock of {holder.describe()} on {ref.name}; journaled as {run.owner}: {reason}")
