"""Diagnostics as terminal text: the headline, then the source line with a caret."""

from __future__ import annotations

import re
from collections.abc import Sequence

from shipyard.sdk.model import Diagnostic, Severity

_TOKEN = re.compile(r"[\w.\-/@\"']+")


def format_diagnostic(diagnostic: Diagnostic) -> str:
    """``file:line:col: key: got X, expected Y (hint)`` plus a caret snippet when known.

    Example::

        platform/teams/fraud.yaml:9:5: spec.quota.gpus: got unknown key 'gpus', ...
            9 |     gpus: 4
              |     ^^^^
    """
    label = "warning: " if diagnostic.severity is Severity.WARNING else ""
    lines = [f"{label}{diagnostic.headline} [{diagnostic.rule}]"]
    position = diagnostic.position
    if position is not None and diagnostic.snippet is not None:
        source = diagnostic.snippet.rstrip().replace("\t", " ")
        start = max(position.column - 1, 0)
        match = _TOKEN.match(source, start)
        width = max(len(match.group()) if match else 1, 1)
        gutter = str(position.line)
        lines.append(f"  {gutter} | {source}")
        lines.append(f"  {' ' * len(gutter)} | {' ' * start}{'^' * width}")
    return "\n".join(lines)


def format_diagnostics(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    body = "\n\n".join(format_diagnostic(d) for d in diagnostics)
    tally = f"{errors} error{'s' if errors != 1 else ''}"
    if warnings:
        tally += f", {warnings} warning{'s' if warnings != 1 else ''}"
    return f"{body}\n\n{tally}."
