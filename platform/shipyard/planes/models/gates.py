"""Promotion gates: pure checks of a candidate model version against the spec's gates.

The registry adapter gathers the facts (``Candidate``); this module only compares,
so every gate is tested without a server and each failure names its gate.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shipyard.planes.models.spec import METRIC_GATE, Gates
from shipyard.sdk.provenance import missing

#: Always on where provenance is required (the local target): see ``sdk.provenance``.
PROVENANCE_GATE = "trained by a Shipyard pipeline run"

_COMPARE: Mapping[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Candidate:
    """What the registry knows about one model version's training run."""

    version: int
    metrics: Mapping[str, float]
    data_checks: frozenset[str] = frozenset()  # DataChecks the run's gate passed
    datasets: frozenset[str] = frozenset()  # datasets the run logged as evaluation inputs
    tags: Mapping[str, str] = field(default_factory=dict)
    #: The provenance tags of its run (``sdk.provenance``); None where provenance is not required.
    provenance: Mapping[str, str] | None = None


@dataclass(frozen=True)
class GateFailure:
    gate: str  # as the spec writes it, e.g. "roc_auc >= 0.85"
    found: str  # what the version showed

    def __str__(self) -> str:
        return f"gate '{self.gate}' failed: {self.found}"


def evaluate(gates: Gates, candidate: Candidate, current: Candidate | None) -> list[GateFailure]:
    """Every gate ``candidate`` fails; ``current`` is the version the alias serves now, if any."""
    failures = []
    lacking = [] if candidate.provenance is None else missing(candidate.provenance)
    if lacking:
        failures.append(
            GateFailure(
                PROVENANCE_GATE,
                f"version {candidate.version}'s run lacks {', '.join(lacking)}: it was registered by hand, "
                "not by a pipeline run Shipyard applied",
            )
        )
    for gate in gates.metrics:
        match = METRIC_GATE.match(gate)
        assert match is not None  # the spec validated it
        metric, op, threshold = match.group(1), match.group(2), float(match.group(3))
        value = candidate.metrics.get(metric)
        if value is None:
            failures.append(GateFailure(gate, f"version {candidate.version} logged no metric '{metric}'"))
        elif not _COMPARE[op](value, threshold):
            failures.append(GateFailure(gate, f"version {candidate.version} has {metric} = {value:.4g}"))
    delta = gates.no_worse_than_current
    if delta is not None and current is not None and current.version != candidate.version:
        name = f"no worse than version {current.version} by more than {delta.by:g} on {delta.metric}"
        new, old = candidate.metrics.get(delta.metric), current.metrics.get(delta.metric)
        if new is None or old is None:
            failures.append(
                GateFailure(
                    name,
                    f"'{delta.metric}' is missing from version {candidate.version if new is None else current.version}",
                )
            )
        else:
            drop = (old - new) if delta.higher_is_better else (new - old)
            if drop > delta.by:
                failures.append(GateFailure(name, f"{delta.metric} {old:.4g} → {new:.4g}"))
    for check in gates.data_checks:
        if check not in candidate.data_checks:
            passed = ", ".join(sorted(candidate.data_checks)) or "none"
            failures.append(GateFailure(f"data check {check} passed", f"the run passed: {passed}"))
    if gates.evaluation_dataset and gates.evaluation_dataset not in candidate.datasets:
        logged = ", ".join(sorted(candidate.datasets)) or "none"
        failures.append(GateFailure(f"evaluated on {gates.evaluation_dataset}", f"the run logged: {logged}"))
    return failures
