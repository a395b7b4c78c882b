"""Drift, for a terminal, an issue body or a machine. Pure: the report in, text out.

Each drifted field is named with both sides: what was last applied and what is live (changed
outside Shipyard), or what was last applied and what HEAD wants (not yet applied).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shipyard.core.render.common import leaves, short
from shipyard.sdk.model import Action, Change, FieldOp

#: The first line of the Markdown body: a workflow finds the one open drift issue by it.
MARKER = "<!-- shipyard-drift:{target} -->"

#: For each group, what each action of its comparison means.
OUTSIDE = {
    Action.CREATE: "gone from the target (deleted or stopped outside Shipyard)",
    Action.UPDATE: "changed outside Shipyard",
    Action.DELETE: "on the target but never applied by Shipyard",
}
PENDING = {
    Action.CREATE: "added in git, not yet applied",
    Action.UPDATE: "changed in git, not yet applied",
    Action.DELETE: "removed from git, still on the target",
}
GROUPS = (("outside", "Changed outside Shipyard", OUTSIDE, "live"), ("pending", "Not yet applied", PENDING, "HEAD"))


def drift_fields(change: Change, now: str) -> list[dict[str, Any]]:
    """Each drifted field as ``{"field", "applied", <now>}``; ``now`` is "live" or "HEAD"."""
    outside = now == "live"
    if change.action is Action.UPDATE:
        rows = []
        for diff in change.diffs:
            # outside: desired = last applied, observed = live; pending: desired = HEAD, observed = last applied
            applied, current = (diff.after, diff.before) if outside else (diff.before, diff.after)
            rows.append(
                {
                    "field": diff.dotted,
                    "applied": None if diff.op is (FieldOp.REMOVE if outside else FieldOp.ADD) else applied,
                    now: None if diff.op is (FieldOp.ADD if outside else FieldOp.REMOVE) else current,
                }
            )
        return rows
    body = change.desired.body if change.desired is not None else change.observed.body if change.observed else {}
    was_applied = (change.action is Action.CREATE) == outside
    return [
        {"field": path, "applied": value if was_applied else None, now: None if was_applied else value}
        for path, value in leaves(body)
    ]


def render_drift_text(target: str, outside: Sequence[Change], pending: Sequence[Change], limit: int = 12) -> str:
    if not outside and not pending:
        return f"No drift on {target}: it matches its last apply, and HEAD has nothing new to apply.\n"
    lines = []
    for name, title, meaning, now in GROUPS:
        changes = outside if name == "outside" else pending
        if not changes:
            continue
        lines.append(f"{title} ({len(changes)}):")
        for change in changes:
            lines.append(f"  {change.key}: {meaning[change.action]}")
            fields = drift_fields(change, now)
            for row in fields[:limit]:
                lines.append(f"      {row['field']}: applied {short(row['applied'], 40)}, {now} {short(row[now], 40)}")
            if len(fields) > limit:
                lines.append(f"      ... {len(fields) - limit} more fields (--format json has them all)")
    lines.append(f"Drift on {target}: {len(outside)} changed outside Shipyard, {len(pending)} not yet applied.")
    lines.append(f"The fix is an apply: shipyard plan -t {target}, review, shipyard apply.")
    return "\n".join(lines) + "\n"


def render_drift_markdown(target: str, outside: Sequence[Change], pending: Sequence[Change]) -> str:
    head = [MARKER.format(target=target), f"## Drift on `{target}`", ""]
    if not outside and not pending:
        return "\n".join([*head, "No drift: the target matches its last apply.", ""])
    head.append(f"**{len(outside)}** changed outside Shipyard, **{len(pending)}** not yet applied.")
    for name, title, meaning, now in GROUPS:
        changes = outside if name == "outside" else pending
        if not changes:
            continue
        head += ["", f"### {title}", "", f"| Resource | What | Field | Applied | {now} |", "|---|---|---|---|---|"]
        for change in changes:
            for row in drift_fields(change, now)[:20]:
                head.append(
                    f"| `{change.key}` | {meaning[change.action]} | `{row['field']}` | "
                    f"`{short(row['applied'], 40)}` | `{short(row[now], 40)}` |"
                )
    head += ["", f"Fix: `shipyard plan -t {target}`, review it, then `shipyard apply`.", ""]
    return "\n".join(head)


def render_drift_json(target: str, outside: Sequence[Change], pending: Sequence[Change]) -> str:
    def entries(changes: Sequence[Change], meaning: dict[Action, str], now: str) -> list[dict[str, Any]]:
        return [
            {"key": c.key, "plane": c.plane, "what": meaning[c.action], "fields": drift_fields(c, now)} for c in changes
        ]

    data = {
        "format": "shipyard.dev/drift/v1",
        "target": target,
        "drift": bool(outside or pending),
        "outside": entries(outside, OUTSIDE, "live"),
        "pending": entries(pending, PENDING, "HEAD"),
    }
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
