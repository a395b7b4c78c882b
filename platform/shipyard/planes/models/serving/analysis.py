"""Canary analysis: is the new version as good as the one serving now? Pure: figures in, verdict out.

Latency on a shared host is noisy: a p95 counts as a regression only when it is both
``maxLatencyRatio`` times the serving version's *and* ``maxLatencyIncreaseMs`` above it,
on at least the canary's ``requests`` answers. A verdict that rests on latency or on too
few answers alone is measured again in a fresh window before it rejects (``settle``);
errors are not: a failing canary is rolled back at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shipyard.planes.models.spec import Canary

#: How many windows a noisy verdict gets: the first, and one more before it rejects.
WINDOWS = 2


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


@dataclass(frozen=True)
class Problem:
    """One reason the candidate must not take over. ``noisy``: it may not hold in another window."""

    message: str
    noisy: bool = False

    def __str__(self) -> str:
        return self.message


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def problems(canary: Canary, stable: Window, candidate: Window) -> list[Problem]:
    """Why the candidate must not take over; empty when it may."""
    found = []
    if candidate.requests < canary.requests:
        found.append(
            Problem(f"the canary answered {candidate.requests} of the {canary.requests} requests it needs", noisy=True)
        )
    if candidate.error_rate > canary.max_error_rate:
        found.append(
            Problem(
                f"error rate {candidate.error_rate:.1%} > {canary.max_error_rate:.1%} "
                f"({candidate.errors} of {candidate.requests} requests failed)"
            )
        )
    if stable.requests >= canary.requests and candidate.requests >= canary.requests:
        ratio = candidate.p95_ms / stable.p95_ms if stable.p95_ms else math.inf
        increase = candidate.p95_ms - stable.p95_ms
        if ratio > canary.max_latency_ratio and increase > canary.max_latency_increase_ms:
            found.append(
                Problem(
                    f"p95 latency {candidate.p95_ms:.1f} ms is {ratio:.1f}x and {increase:.1f} ms above the serving "
                    f"version's {stable.p95_ms:.1f} ms (at most {canary.max_latency_ratio}x "
                    f"or {canary.max_latency_increase_ms:g} ms more)",
                    noisy=True,
                )
            )
    return found


def settle(measure: Callable[[], list[Problem]], windows: int = WINDOWS) -> list[Problem]:
    """The verdict of ``measure`` (one window each call): a noisy one is measured again, up to ``windows`` times;
    it rejects only if every window found a problem."""
    found = measure()
    for _ in range(windows - 1):
        if not found or not all(p.noisy for p in found):
            break
        found = measure()
    return found
