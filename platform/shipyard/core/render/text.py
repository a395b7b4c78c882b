"""A Plan for the terminal, as a rich Text (styled; ``.plain`` for golden files)."""

from __future__ import annotations

from rich.text import Text

from shipyard.core.plan import Plan
from shipyard.core.render.common import SYMBOL, VERB, cost_line, field_lines, summary
from shipyard.sdk.model import Action

STYLE = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.DELETE: "red", Action.NOOP: "dim"}
LINE_STYLE = {"+": "green", "-": "red", "~": "yellow"}
MAX_FIELDS = 12


def render_text(plan: Plan, *, show_unchanged: bool = False) -> Text:
    out = Text()
    out.append(f"Plan for target {plan.target}", style="bold")
    out.append(f"  (hash {plan.hash[:12]})\n", style="dim")
    for change in plan.changes:
        if change.action is Action.NOOP and not show_unchanged:
            continue
        out.append(f"  {SYMBOL[change.action]} {VERB[change.action]:<9} ", style=STYLE[change.action])
        out.append(change.key, style="bold")
        if change.source:
            out.append(f"  {change.source}", style="dim")
        out.append("\n")
        for line in field_lines(change, MAX_FIELDS):
            out.append(f"        {line}\n", style=LINE_STYLE.get(line[0], "dim"))
    out.append(summary(plan), style="bold")
    if cost := cost_line(plan):
        out.append(f"\n{cost}")
    return out
