"""A Plan as a sticky pull-request comment, always under GitHub's comment limit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from shipyard.core.plan import Plan
from shipyard.core.render.common import SYMBOL, VERB, cost_line, field_lines, summary
from shipyard.sdk.model import Action, Diagnostic, Severity

#: GitHub rejects comments longer than this many characters.
GITHUB_COMMENT_LIMIT = 65_536
#: What the plan leaves of that limit to what shares its comment (`shipyard ci comment`: the comment's
#: marker line, the owners table, the commit line).
COMMENT_ROOM = 4_096
MAX_FIELDS = 40
#: Places listed per rule, and characters of its first finding, in the comment's findings table.
MAX_PLACES = 3
#: Teams and stacks listed in the summary by scope; the JSON artifact has every change.
MAX_SCOPES = 20
MAX_DETAIL = 300


def marker(target: str) -> str:
    """The hidden line a workflow searches for to update the comment instead of adding one."""
    return f"<!-- shipyard-plan:{target} -->"


def render_markdown(
    plan: Plan,
    diagnostics: Sequence[Diagnostic] = (),
    *,
    artifact: str = "plan.json",
    limit: int = GITHUB_COMMENT_LIMIT - COMMENT_ROOM,
    footer: str = "",
) -> str:
    """Full detail when it fits; otherwise the summary, findings and changed keys only,
    cut further if needed, with a pointer to the JSON artifact holding everything. ``footer``
    (how the plan was computed) closes the comment, within the same limit."""
    foot = f"\n<sub>{footer}</sub>\n" if footer else ""
    limit -= len(foot)
    head = _head(plan, diagnostics, limit // 2)  # findings take at most half: the changes are the rest
    full = head + _details(plan)
    if len(full) <= limit:
        return full + foot
    note = f"\n> Too large for a comment: field details are in the `{artifact}` artifact of this run.\n"
    keys = [f"- {SYMBOL[c.action]} {VERB[c.action]} `{c.key}`" for c in plan.pending]
    budget = limit - len(head) - len(note) - 200
    shown: list[str] = []
    used = 0
    for line in keys:
        used += len(line) + 1
        if used > budget:
            break
        shown.append(line)
    more = f"\n- ... and {len(keys) - len(shown)} more" if len(shown) < len(keys) else ""
    return head + note + "\n".join(shown) + more + "\n" + foot


def _head(plan: Plan, diagnostics: Sequence[Diagnostic], budget: int = GITHUB_COMMENT_LIMIT // 2) -> str:
    lines = [
        marker(plan.target),
        f"### Shipyard plan for `{plan.target}`",
        "",
        f"**{summary(plan)}** Hash `{plan.hash[:12]}`.",
        "",
    ]
    if cost := cost_line(plan):
        lines += [cost, ""]
    planes = sorted({c.plane for c in plan.changes}, key=[c.plane for c in plan.changes].index)
    if planes:
        lines += ["| plane | create | update | delete | unchanged |", "|---|--:|--:|--:|--:|"]
        for plane in planes:
            counts = Counter(c.action for c in plan.changes if c.plane == plane)
            row = " | ".join(str(counts[a]) for a in (Action.CREATE, Action.UPDATE, Action.DELETE, Action.NOOP))
            lines.append(f"| {plane} | {row} |")
        lines.append("")
    lines += _scopes(plan)
    if diagnostics:
        lines += _findings(diagnostics, budget)
    return "\n".join(lines) + "\n"


def _scopes(plan: Plan) -> list[str]:
    """What changes per team (or infra stack): the scopes with the most changes first, at most ``MAX_SCOPES``."""
    counts: dict[str, Counter[Action]] = {}
    for change in plan.pending:
        counts.setdefault(change.scope, Counter())[change.action] += 1
    if not counts:
        return []
    ranked = sorted(counts.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    lines = ["| team or stack | create | update | delete |", "|---|--:|--:|--:|"]
    for scope, found in ranked[:MAX_SCOPES]:
        lines.append(f"| `{scope}` | {found[Action.CREATE]} | {found[Action.UPDATE]} | {found[Action.DELETE]} |")
    if len(ranked) > MAX_SCOPES:
        lines.append(f"| … and {len(ranked) - MAX_SCOPES} more | | | |")
    return [*lines, ""]


def _findings(diagnostics: Sequence[Diagnostic], budget: int) -> list[str]:
    """One row per rule (mandatory first, then advisory, then waived): how many, the first few places, the first
    finding; rows stop at ``budget`` characters. Every finding is in the JSON artifact."""
    order = [Severity.ERROR, Severity.WARNING, Severity.WAIVED]
    groups: dict[tuple[Severity, str], list[Diagnostic]] = {}
    for d in sorted(diagnostics, key=lambda d: order.index(d.severity)):
        groups.setdefault((d.severity, d.rule), []).append(d)
    lines = [
        "#### Policy and validation findings",
        "",
        "| | rule | count | where | first finding |",
        "|---|---|--:|---|---|",
    ]
    used = sum(len(line) + 1 for line in lines)
    for index, ((severity, rule), found) in enumerate(groups.items()):
        icon = {Severity.ERROR: ":x:", Severity.WARNING: ":warning:"}.get(severity, ":white_check_mark: waived")
        places = [f"`{d.position}`" for d in found[:MAX_PLACES] if d.position]
        more = f" and {len(found) - MAX_PLACES} more" if len(found) > MAX_PLACES else ""
        row = f"| {icon} | `{rule}` | {len(found)} | {', '.join(places)}{more} | {_cell(clip(found[0].detail))} |"
        if used + len(row) + 1 > budget:
            rest = list(groups.values())[index:]
            lines.append(f"\n... and {sum(map(len, rest))} more findings of {len(rest)} more rules in the artifact")
            break
        lines.append(row)
        used += len(row) + 1
    return [*lines, ""]


def _details(plan: Plan) -> str:
    blocks: list[str] = []
    for change in plan.pending:
        where = f" — `{change.source}`" if change.source else ""
        body = "\n".join(field_lines(change, MAX_FIELDS))
        blocks.append(
            f"<details><summary>{SYMBOL[change.action]} {VERB[change.action]} <code>{change.key}</code>{where}"
            f"</summary>\n\n```diff\n{body}\n```\n</details>\n"
        )
    return "\n".join(blocks)


def clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
