"""Plans and findings as JSON for machines (CI artifacts, `apply --plan`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.core.plan import Plan
from shipyard.sdk.model import Diagnostic


def render_json(
    plan: Plan | None,
    diagnostics: Sequence[Diagnostic] = (),
    *,
    full: bool = False,
    reuse: Mapping[str, Any] | None = None,
) -> str:
    """Only pending changes listed, unchanged Resources counted per plane and scope (a plan file at 500 teams
    stays small), unless ``full``;
    ``reuse`` says which units the plan took from its cache (beside the plan: not part of what was reviewed)."""
    data: dict[str, object] = {"diagnostics": [d.to_dict() for d in diagnostics]}
    if plan is not None:
        data["plan"] = plan.to_dict(full=full)
    if reuse:
        data["reuse"] = reuse
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
