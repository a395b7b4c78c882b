"""Canary analysis: is the new version as good as the one serving now? Pure: figures in, verdict out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.planes.models.spec import Canary


@dataclass(frozen=True)
class Window:
    """What one backend answered while the canary ran."""

    requests: int
    errors: int
    latencies_ms: tuple[float, ...]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# Below this, a ratio of two p95s is noise: a 0.3 ms answer "twice as slow" as a 0.15 ms one is not a regression.
LATENCY_FLOOR_MS = 5.0


def problems(canary: Canary, stable: Window, candidate: Window) -> list[str]:
    """Why the candidate must not take over; empty when it may."""
    found = []
    if candidate.requests == 0:
        found.append("the canary received no requests")
    if candidate.error_rate > canary.max_error_rate:
        found.append(
            f"error rate {candidate.error_rate:.1%} > {canary.max_error_rate:.1%} "
            f"({candidate.errors} of {candidate.requests} requests failed)"
        )
    slower = max(candidate.p95_ms, LATENCY_FLOOR_MS) / max(stable.p95_ms, LATENCY_FLOOR_MS)
    if stable.requests and slower > canary.max_latency_ratio:
        found.append(
            f"p95 latency {candidate.p95_ms:.1f} ms is {slower:.1f}x the serving version's "
            f"{stable.p95_ms:.1f} ms (at most {canary.max_latency_ratio}x)"
        )
    return found
