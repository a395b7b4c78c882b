"""Workflow commands GitHub Actions turns into annotations on the pull request's files."""

from __future__ import annotations

from collections.abc import Sequence

from shipyard.core.plan import Plan
from shipyard.core.render.common import VERB
from shipyard.sdk.model import Diagnostic, Severity


def render_github(plan: Plan | None, diagnostics: Sequence[Diagnostic] = ()) -> str:
    lines = [_annotation(d) for d in diagnostics]
    if plan is not None:
        for change in plan.pending:
            source = change.source
            if source is None:
                continue
            detail = f" ({len(change.diffs)} fields)" if change.diffs else ""
            props = f"file={_prop(source.file)},line={source.line},col={source.column},title=shipyard plan"
            lines.append(f"::notice {props}::{_data(f'{VERB[change.action]} {change.key}{detail}')}")
    return "".join(line + "\n" for line in lines)


def _annotation(d: Diagnostic) -> str:
    command = {Severity.ERROR: "error", Severity.WARNING: "warning"}.get(d.severity, "notice")
    props = [f"title={_prop(d.rule)}"]
    if d.position is not None:
        props = [f"file={_prop(d.position.file)}", f"line={d.position.line}", f"col={d.position.column}", *props]
    return f"::{command} {','.join(props)}::{_data(d.detail)}"


def _data(text: str) -> str:
    # escaping rules of GitHub's workflow commands (toolkit/core command.ts)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
