"""Wording and value formatting shared by every renderer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shipyard.core.plan import Plan
from shipyard.sdk.model import MONTHLY_COST, Action, Change, FieldOp, FieldPath, dotted

SYMBOL = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.NOOP: "="}
VERB = {Action.CREATE: "create", Action.UPDATE: "update", Action.DELETE: "delete", Action.NOOP: "unchanged"}


def short(value: Any, limit: int = 80) -> str:
    """A value on one line, JSON-spelled, cut to ``limit`` characters."""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summary(plan: Plan) -> str:
    counts = plan.counts()
    if not plan.has_changes:
        return f"No changes. {counts[Action.NOOP]} unchanged."
    parts = [f"{counts[a]} to {VERB[a]}" for a in (Action.CREATE, Action.UPDATE, Action.DELETE)]
    return f"Plan: {', '.join(parts)}, {counts[Action.NOOP]} unchanged."


def monthly_cost(plan: Plan) -> tuple[float, float] | None:
    """What the Resources this plan changes can cost a month, before and after (``MONTHLY_COST``);
    None when it changes none that states a cost."""
    before = after = 0.0
    stated = False
    for change in plan.changes:
        if change.action == Action.NOOP:
            continue
        for resource, side in ((change.observed, "before"), (change.desired, "after")):
            value = resource.body.get(MONTHLY_COST) if resource is not None else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                stated = True
                if side == "before":
                    before += value
                else:
                    after += value
    return (round(before, 2), round(after, 2)) if stated else None


def cost_line(plan: Plan) -> str:
    """The monthly cost delta as one sentence ("" when the plan changes no cost)."""
    cost = monthly_cost(plan)
    if cost is None:
        return ""
    before, after = cost
    return f"Monthly cost at max size: ${before:,.2f} → ${after:,.2f} ({after - before:+,.2f} USD)."


def leaves(value: Any, path: FieldPath = ()) -> list[tuple[str, Any]]:
    """Flatten a body to (dotted path, scalar) pairs, to show what a create or delete holds."""
    if isinstance(value, dict) and value:
        return [pair for key in sorted(value, key=str) for pair in leaves(value[key], (*path, key))]
    if isinstance(value, list) and value:
        return [pair for i, item in enumerate(value) for pair in leaves(item, (*path, i))]
    return [(dotted(path), value)]


def field_lines(change: Change, limit: int) -> list[str]:
    """What a change does field by field: ``+ path: v``, ``- path: v``, ``~ path: a -> b``."""
    if change.action is Action.UPDATE:
        rows = []
        for diff in change.diffs:
            if diff.op is FieldOp.ADD:
                rows.append(f"+ {diff.dotted}: {short(diff.after)}")
            elif diff.op is FieldOp.REMOVE:
                rows.append(f"- {diff.dotted}: {short(diff.before)}")
            else:
                rows.append(f"~ {diff.dotted}: {short(diff.before)} -> {short(diff.after)}")
    elif change.action is Action.CREATE and change.desired is not None:
        rows = [f"+ {path}: {short(value)}" for path, value in leaves(change.desired.body)]
    elif change.action is Action.DELETE and change.observed is not None:
        rows = [f"- {path}: {short(value)}" for path, value in leaves(change.observed.body)]
    else:
        rows = []
    if len(rows) > limit:
        rows = [*rows[:limit], f"  ... {len(rows) - limit} more fields (full plan in JSON)"]
    return rows


def one_line(change: Change, shown: int = 2) -> str:
    """An update's first field changes on one line (``  version: 1 -> 2``); empty for other actions."""
    if change.action is not Action.UPDATE or not change.diffs:
        return ""
    parts = [f"{d.dotted}: {short(d.before, 30)} -> {short(d.after, 30)}" for d in change.diffs[:shown]]
    more = f" (+{len(change.diffs) - shown} more)" if len(change.diffs) > shown else ""
    return "  " + "; ".join(parts) + more


def reuse_line(reuse: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """``reused 2,499 of 2,503 units; computed: models/fraud``: what a plan took from its cache.

    ``reuse`` is, per side of the plan (head, base) and plane, the count of units reused and the
    scopes computed.
    """
    reused = sum(p["reused"] for side in reuse.values() for p in side.values())
    computed = [f"{plane}/{scope}" for side in reuse.values() for plane, p in side.items() for scope in p["computed"]]
    if not reused and not computed:
        return ""
    shown = ", ".join(dict.fromkeys(computed[:MAX_COMPUTED]))
    more = f" and {len(computed) - MAX_COMPUTED} more" if len(computed) > MAX_COMPUTED else ""
    return f"reused {reused:,} of {reused + len(computed):,} units; computed: {shown or 'none'}{more}"


#: Units a reuse line names before it counts the rest.
MAX_COMPUTED = 8
