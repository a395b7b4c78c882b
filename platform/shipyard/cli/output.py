"""How commands print: findings in the chosen format, a console, a reviewed plan read back."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from shipyard.core.plan import Plan
    from shipyard.sdk.model import Change, Diagnostic

EXIT_OK, EXIT_USER, EXIT_CHANGES, EXIT_INTERNAL = 0, 1, 2, 3
FORMAT_HELP = "Output format."


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def blocking(findings: Sequence[Diagnostic]) -> bool:
    from shipyard.core.policies import blocking as mandatory

    return bool(mandatory(findings))


def report(findings: Sequence[Diagnostic], fmt: str | None) -> None:
    """Findings in the chosen format: text on stderr, machine formats on stdout."""
    if fmt == "github":
        from shipyard.core.render.github import render_github

        click.echo(render_github(None, findings), nl=False)
    elif fmt == "json":
        from shipyard.core.render.jsonout import render_json

        click.echo(render_json(None, findings), nl=False)
    elif findings:
        from shipyard.core.render.diagnostics import format_diagnostics

        click.echo(format_diagnostics(findings), err=True)


def within_repo(findings: Sequence[Diagnostic], root: Path) -> list[Diagnostic]:
    """Findings with the repository's absolute path cut from their text, leaving repo-relative paths.

    What a plan prints is read elsewhere (a PR comment, a CI artifact, an annotation), so it names
    no folder of the machine that made it; positions are repo-relative already, but a plane's
    message may name a file under the root it was given (the local target's data).
    """
    prefixes = {f"{root}{os.sep}", f"{root.resolve()}{os.sep}"}

    def cut(text: str) -> str:
        for prefix in prefixes:
            text = text.replace(prefix, "")
        return text

    return [replace(d, message=cut(d.message), hint=cut(d.hint)) for d in findings]


def change_line(change: Change) -> str:
    """``  ~ update  models/fraud/ModelAlias/fraud-scorer  version: 1 -> 2``: one applied change."""
    from shipyard.core.render.common import SYMBOL, one_line

    return f"  {SYMBOL[change.action]} {change.action.value:<7} {change.key}{one_line(change)}"


def read_plan(path: Path) -> Plan:
    import json

    from shipyard.core.plan import Plan
    from shipyard.sdk.errors import UserError

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(
            f"{path}: not a usable plan file ({error})", hint="make one with shipyard plan --out"
        ) from error
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a usable plan file (a JSON object is expected)")
    try:
        return Plan.from_dict(data.get("plan", data))
    except UserError as error:
        raise UserError(f"{path}: {error.message}", hint=error.hint) from error
