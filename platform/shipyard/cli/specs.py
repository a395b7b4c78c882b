"""Verbs about the repository itself: validate specs, write their JSON Schemas, list plugins, version."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from shipyard.cli.app import Session, pass_session, remember_format
from shipyard.cli.output import EXIT_USER, FORMAT_HELP, blocking, console, report

DEFAULT_SCHEMA_DIR = "platform/schemas"


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    help=FORMAT_HELP,
    callback=remember_format,
)
@pass_session
def validate(session: Session, fmt: str) -> None:
    """Check every spec and the policies that need only specs; change nothing.

    Errors print as path:line:col with a caret under the problem; all of them at once.
    """
    from shipyard.engine.planner import validate as run_validate

    result = run_validate(session.registry, session.root)
    report(result.findings, fmt)
    if blocking(result.findings):
        raise click.exceptions.Exit(EXIT_USER)
    if fmt == "text":
        files = len(result.specs.files)
        click.echo(f"ok: {len(result.specs)} specs in {files} file{'s' if files != 1 else ''} are valid.")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help=FORMAT_HELP)
@pass_session
def plugins(session: Session, fmt: str) -> None:
    """List installed plugins with their distribution, version, kinds, planes and commands."""
    infos = session.registry.plugins
    if fmt == "json":
        import json

        rows = [
            {**vars(i), **{k: list(getattr(i, k)) for k in ("kinds", "planes", "policies", "commands")}} for i in infos
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Column, Table

    table = Table(
        Column("plugin", no_wrap=True),
        Column("distribution", no_wrap=True),
        "version",
        "kinds",
        "planes",
        "commands",
        "policies",
        box=None,
    )
    for info in infos:
        table.add_row(
            info.name,
            info.distribution,
            info.version,
            ", ".join(info.kinds) or "-",
            ", ".join(info.planes) or "-",
            ", ".join(info.commands) or "-",
            str(len(info.policies)),
        )
    console().print(table)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help=FORMAT_HELP)
@pass_session
def policies(session: Session, fmt: str) -> None:
    """List every rule in force: id, title, target, enforcement, upstream references, origin.

    Rules come from the built-in planes, installed plugins, and the repository's own
    policies/*.py. Exceptions to them are in policies/waivers.yaml.
    """
    from shipyard.engine.policies import rules_in_force

    rules = rules_in_force(session.registry, session.root)
    rows = [
        {
            "id": p.id,
            "title": p.summary,
            "target": p.target,
            "enforcement": p.enforcement,
            "references": list(p.references),
            "origin": rules.origins.get(p.id, "?"),
            "hint": p.hint,
        }
        for p in sorted(rules.policies, key=lambda p: p.id)
    ]
    if fmt == "json":
        import json

        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Column, Table

    table = Table(Column("id", no_wrap=True), "title", "target", "enforcement", "references", "origin", box=None)
    for p in sorted(rules.policies, key=lambda p: p.id):
        table.add_row(p.id, p.summary, p.target, p.enforcement, ", ".join(p.references) or "-", rules.origins[p.id])
    console().print(table)


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Folder for <kind>.schema.json files. Default: {DEFAULT_SCHEMA_DIR} in the repo.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files are missing or out of date.")
@pass_session
def schema(session: Session, out: Path | None, check: bool) -> None:
    """Write a JSON Schema per kind so editors autocomplete and check specs.

    Put this modeline at the top of a spec (path relative to the spec file):

    \b
      # yaml-language-server: $schema=../schemas/team.schema.json
    """
    import json

    from shipyard.core.specs import document_schema

    folder = out or session.root / DEFAULT_SCHEMA_DIR
    stale: list[str] = []
    for kind in sorted(session.registry.kinds.values(), key=lambda k: k.name):
        path = folder / f"{kind.name.lower()}.schema.json"
        text = json.dumps(document_schema(kind), indent=2, sort_keys=True) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        click.echo(f"wrote {path}")
    if stale:
        click.echo("out of date: " + ", ".join(stale) + " (run: shipyard schema)", err=True)
        raise click.exceptions.Exit(EXIT_USER)


@click.command()
def version() -> None:
    """Print Shipyard's version."""
    from shipyard import __version__

    click.echo(f"shipyard {__version__} (python {sys.version.split()[0]})")
