"""The canary verdict, on its own figures: errors, latency beyond the limit, and the noise floor."""

from __future__ import annotations

import pytest

from shipyard.planes.models.serving.analysis import LATENCY_FLOOR_MS, Window, percentile, problems
from shipyard.planes.models.spec import Canary

CANARY = Canary(percent=10, requests=100, max_error_rate=0.01, max_latency_ratio=1.5)


def window(requests: int, errors: int, latency_ms: float) -> Window:
    return Window(requests, errors, (latency_ms,) * requests)


@pytest.mark.parametrize(
    ("stable", "candidate", "found"),
    [
        (window(900, 0, 8.0), window(100, 0, 9.0), []),
        (window(900, 0, 8.0), window(100, 2, 8.0), ["error rate 2.0% > 1.0% (2 of 100 requests failed)"]),
        (window(900, 0, 8.0), window(100, 0, 16.0), ["p95 latency 16.0 ms is 2.0x the serving version's 8.0 ms"]),
        (window(900, 0, 0.2), window(100, 0, 4.0), []),  # both under the floor: noise, not a regression
        (window(900, 0, 8.0), window(0, 0, 8.0), ["the canary received no requests"]),
    ],
)
def test_the_verdict(stable: Window, candidate: Window, found: list[str]) -> None:
    verdict = problems(CANARY, stable, candidate)
    assert [problem.split(" (at most")[0] for problem in verdict] == found


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 95) == 5.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 40) == 2.0
    assert percentile([], 95) == 0.0
    assert LATENCY_FLOOR_MS > 0
