"""Diagnostics as terminal text: the headline, then the source line with a caret."""

from __future__ import annotations

import re
from collections.abc import Sequence

from shipyard.sdk.model import Diagnostic, Severity

_TOKEN = re.compile(r"[\w.\-/@\"']+")
#: The most of a source line a diagnostic quotes: a 20 KB line (10,000 levels of nesting, a pasted
#: blob) shows as a window around the column, with an ellipsis on each cut side.
MAX_SNIPPET = 200
_LEAD = 40  # characters of context kept before the column in a window


def format_diagnostic(diagnostic: Diagnostic) -> str:
    """``file:line:col: key: got X, expected Y (hint)`` plus a caret snippet when known.

    Example::

        platform/teams/fraud.yaml:9:5: spec.quota.gpus: got unknown key 'gpus', ...
            9 |     gpus: 4
              |     ^^^^
    """
    label = {Severity.WARNING: "warning: ", Severity.WAIVED: "waived: "}.get(diagnostic.severity, "")
    lines = [f"{label}{diagnostic.headline} [{diagnostic.rule}]"]
    position = diagnostic.position
    if position is not None and diagnostic.snippet is not None:
        line = diagnostic.snippet.rstrip().replace("\t", " ")
        match = _TOKEN.match(line, max(position.column - 1, 0))
        source, start = _window(line, max(position.column - 1, 0))
        width = max(min(len(match.group()) if match else 1, len(source) - start), 1)
        gutter = str(position.line)
        lines.append(f"  {gutter} | {source}")
        lines.append(f"  {' ' * len(gutter)} | {' ' * start}{'^' * width}")
    return "\n".join(lines)


def _window(source: str, start: int) -> tuple[str, int]:
    """At most ``MAX_SNIPPET`` characters of ``source`` around ``start``, and where ``start`` is in them."""
    if len(source) <= MAX_SNIPPET:
        return source, start
    low = max(0, min(start - _LEAD, len(source) - MAX_SNIPPET))
    high = low + MAX_SNIPPET
    head = "…" if low > 0 else ""
    tail = "…" if high < len(source) else ""
    return f"{head}{source[low:high]}{tail}", min(start, high) - low + len(head)


def format_diagnostics(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = sum(d.severity is Severity.WARNING for d in diagnostics)
    waived = sum(d.severity is Severity.WAIVED for d in diagnostics)
    body = "\n\n".join(format_diagnostic(d) for d in diagnostics)
    tally = f"{errors} error{'s' if errors != 1 else ''}"
    if warnings:
        tally += f", {warnings} warning{'s' if warnings != 1 else ''}"
    if waived:
        tally += f", {waived} waived"
    return f"{body}\n\n{tally}."
