"""The canary verdict, on its own figures: errors, latency beyond both limits, too few answers, a second window."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shipyard.planes.models.serving.analysis import Problem, Window, percentile, problems, settle
from shipyard.planes.models.spec import Canary

CANARY = Canary(percent=10, requests=100, max_error_rate=0.01, max_latency_ratio=1.5, max_latency_increase_ms=10)


def window(requests: int, errors: int, latency_ms: float) -> Window:
    return Window(requests, errors, (latency_ms,) * requests)


@pytest.mark.parametrize(
    ("stable", "candidate", "found"),
    [
        (window(900, 0, 8.0), window(100, 0, 9.0), []),
        (window(900, 0, 8.0), window(100, 2, 8.0), ["error rate 2.0% > 1.0% (2 of 100 requests failed)"]),
        (window(900, 0, 8.0), window(100, 0, 24.0), ["p95 latency 24.0 ms is 3.0x and 16.0 ms above"]),
        # The audit's busy host: 1.7x, but 3.5 ms. A ratio alone of small figures is noise, not a regression.
        (window(900, 0, 4.9), window(100, 0, 8.4), []),
        # Far above the margin but within the ratio: a slow model that got no slower.
        (window(900, 0, 200.0), window(100, 0, 280.0), []),
        (window(900, 0, 8.0), window(0, 0, 8.0), ["the canary answered 0 of the 100 requests it needs"]),
        # Too few answers to judge a p95 on: said so, and their latency is not judged.
        (window(900, 0, 8.0), window(40, 0, 80.0), ["the canary answered 40 of the 100 requests it needs"]),
    ],
)
def test_the_verdict(stable: Window, candidate: Window, found: list[str]) -> None:
    verdict = problems(CANARY, stable, candidate)
    assert [str(problem).split(" the serving")[0].split(" (at most")[0] for problem in verdict] == found


def test_latency_and_too_few_answers_are_noisy_and_errors_are_not() -> None:
    slow = problems(CANARY, window(900, 0, 8.0), window(100, 0, 40.0))
    few = problems(CANARY, window(900, 0, 8.0), window(10, 0, 8.0))
    failing = problems(CANARY, window(900, 0, 8.0), window(100, 50, 8.0))
    assert [p.noisy for p in slow + few + failing] == [True, True, False]


def measured(*verdicts: list[Problem]) -> tuple[list[int], Callable[[], list[Problem]]]:
    calls: list[int] = []

    def measure() -> list[Problem]:
        calls.append(len(calls))
        return verdicts[len(calls) - 1]

    return calls, measure


def test_a_noisy_verdict_is_measured_again_before_it_rejects() -> None:
    slow = [Problem("p95 latency", noisy=True)]
    calls, measure = measured(slow, [])
    assert settle(measure) == []  # the busy moment passed: the second window decides
    assert len(calls) == 2
    calls, measure = measured(slow, slow)
    assert settle(measure) == slow  # slow twice: rejected
    assert len(calls) == 2


def test_errors_and_a_clean_window_decide_at_once() -> None:
    failing = [Problem("error rate", noisy=False), Problem("p95 latency", noisy=True)]
    calls, measure = measured(failing)
    assert settle(measure) == failing
    calls2, measure2 = measured([])
    assert settle(measure2) == []
    assert (len(calls), len(calls2)) == (1, 1)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 95) == 5.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 40) == 2.0
    assert percentile([], 95) == 0.0
