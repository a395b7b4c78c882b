"""Plans and findings as JSON for machines (CI artifacts, `apply --plan`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from shipyard.core.plan import Plan
from shipyard.sdk.model import Diagnostic


def render_json(plan: Plan | None, diagnostics: Sequence[Diagnostic] = ()) -> str:
    data: dict[str, object] = {"diagnostics": [d.to_dict() for d in diagnostics]}
    if plan is not None:
        data["plan"] = plan.to_dict()
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
