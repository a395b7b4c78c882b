"""Whose review a change needs (``shipyard owners``), for a terminal, a PR comment or a machine."""

from __future__ import annotations

import json
from collections.abc import Sequence

from shipyard.core.owners import Review

#: Files listed per review before the rest are counted.
MAX_FILES = 10


def render_owners_text(file: str, found: Sequence[Review]) -> str:
    if not found:
        return "No files changed.\n"
    lines = []
    for review in found:
        who = " ".join(review.owners) if review.owners else "(no owner)"
        where = f"  ({file}:{', '.join(map(str, review.lines))})" if review.lines else ""
        lines.append(f"{who}{where}")
        lines += [f"  {path}" for path in review.files]
    return "\n".join(lines) + "\n"


def render_owners_markdown(file: str, found: Sequence[Review]) -> str:
    rows = ["| Review needed from | Files |", "|---|---|"]
    for review in found:
        who = " ".join(review.owners) if review.owners else "nobody (no CODEOWNERS line)"
        shown = ", ".join(f"`{path}`" for path in review.files[:MAX_FILES])
        more = f" and {len(review.files) - MAX_FILES} more" if len(review.files) > MAX_FILES else ""
        rows.append(f"| {who} | {shown}{more} |")
    return "\n".join(rows) + "\n" if found else "No files changed.\n"


def render_owners_json(file: str, found: Sequence[Review]) -> str:
    data = {
        "codeowners": file,
        "reviews": [{"owners": list(r.owners), "lines": list(r.lines), "files": list(r.files)} for r in found],
    }
    return json.dumps(data, indent=2) + "\n"
