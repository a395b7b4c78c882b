"""``up``'s closing summary: a pure function of what ``up`` did (and the time it is now)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from shipyard.engine.up import UpReport


def summary(done: UpReport, seconds: Mapping[str, float], now: datetime) -> str:
    """What runs where, what each model answered, what failed and why, and each step's time (rich markup)."""
    lines = ["", "[bold]Services[/]"]
    for running in done.services:
        service = running.service
        lines.append(f"  {service.name:<10} {running.process.url}  ({service.description})")
    if done.smoked:
        lines += ["", "[bold]Models[/]", f"  {'deployment':<24} {'serving':<16} {'features as of':<34} prediction"]
        for result in done.smoked:
            shown = "[red]failed[/]" if not result.ok else json.dumps(result.prediction)
            version = f"v{result.version} @{result.alias}" if result.version else "-"
            lines.append(f"  {result.deployment:<24} {version:<16} {age(result.features_as_of, now):<34} {shown}")
        for result in done.smoked:
            if result.url and len(result.endpoints) == 2:
                v1, v2 = result.endpoints
                pad = " " * len(result.deployment)
                lines += [f"  {result.deployment}:  V1 POST {v1}", f"  {pad}   V2 POST {v2}"]
    problems = dict(done.failed) | {r.deployment: f"smoke request: {r.error}" for r in done.smoked if not r.ok}
    if problems:
        lines += ["", "[bold red]Failed[/]"]
        lines += [f"  [red]✗[/] {what}: {why}" for what, why in problems.items()]
    lines += ["", "steps: " + " · ".join(f"{name} {took:.1f} s" for name, took in seconds.items())]
    lines.append("`shipyard status` lists the processes; `shipyard down` stops them.")
    return "\n".join(lines)


def age(moment: str | None, now: datetime) -> str:
    """``2026-11-25 00:00 UTC (3 h ago)``: how fresh the features a model read were."""
    if moment is None:
        return "-"
    at = datetime.fromisoformat(moment)
    hours = (now - at).total_seconds() / 3600
    return f"{at:%Y-%m-%d %H:%M} UTC ({hours:.0f} h ago)"
