"""Moving an alias: ``promote`` (only through the gates, recorded on the version) and ``rollback``.

Used by the ModelAlias applier, which moves the alias to exactly the version its Change
names (the gates are checked again as a guard: a version that no longer passes is refused,
never swapped for another), and by the ``promote``/``rollback`` verbs on the local target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from shipyard.planes.models.gates import Candidate, GateFailure, evaluate
from shipyard.planes.models.registry import ModelRegistry, moved_here_by_shipyard
from shipyard.sdk import Spec, UserError


class PromotionRefused(UserError):
    """A version failed its gates: the alias did not move."""


class CanaryRolledBack(UserError):
    """The canary analysis found the new version worse: it no longer serves, and the alias did not move."""


def promote(
    registry: ModelRegistry,
    spec: Spec,
    alias: str,
    version: int,
    why: str,
    trial: Callable[[int | None], str] = lambda current: "",
) -> int | None:
    """Move ``alias`` to ``version`` if it passes the spec's gates; returns the version it left.

    ``trial`` runs after the gates pass and before the move, given the version the alias
    is on (a local canary); it refuses by raising, and returns what to add to ``why``.
    """
    current = registry.alias(spec.spec.registered_model, alias)
    if current == version:
        return current
    failures = gate_failures(registry, spec, alias, version, current)
    if failures:
        raise PromotionRefused(
            f"{spec.spec.registered_model} version {version} was not promoted to @{alias}: "
            + "; ".join(map(str, failures)),
            hint=f"the gates are in {spec.source.file}; @{alias} stays on "
            + ("nothing" if current is None else f"version {current}"),
        )
    why += trial(current)
    return registry.move(spec.spec.registered_model, alias, version, why)


def rollback(registry: ModelRegistry, spec: Spec, alias: str, why: str) -> tuple[int, int]:
    """Move ``alias`` back to the version it pointed at before; the version it leaves is not promoted again."""
    model = spec.spec.registered_model
    current = registry.alias(model, alias)
    previous = registry.previous(model, alias)
    if current is None or previous is None:
        raise UserError(
            f"@{alias} of {model} has no earlier version to go back to",
            hint="a rollback needs a promotion recorded by Shipyard before it",
        )
    registry.reject(model, current, why)
    registry.move(model, alias, previous, f"rollback: {why}")
    return current, previous


def gate_failures(
    registry: ModelRegistry, spec: Spec, alias: str, version: int, current: int | None
) -> list[GateFailure]:
    """The gates ``version`` fails now, against the version the alias serves."""
    baseline = None if current is None else team_candidate(registry, spec, current)
    if baseline is not None and not moved_here_by_shipyard(baseline.tags, alias):
        baseline = None  # a version someone moved the alias to by hand is drift to undo, not a bar to clear
    return evaluate(spec.spec.gates, team_candidate(registry, spec, version), baseline)


def team_candidate(registry: ModelRegistry, spec: Spec, version: int) -> Candidate:
    """A version as the spec's gates read it: the training gate records checks as "<team>/<check>"."""
    found = registry.candidate(spec.spec.registered_model, version)
    return replace(found, data_checks=frozenset(c.removeprefix(f"{spec.team}/") for c in found.data_checks))
