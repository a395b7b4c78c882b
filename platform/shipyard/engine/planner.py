"""Computes desired and observed state and the Plan between them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shipyard.core.plan import Plan, make_plan
from shipyard.core.policies import run_policies
from shipyard.core.repo import load_specs
from shipyard.engine.registry import Registry
from shipyard.engine.revisions import checkout
from shipyard.engine.targets import TargetRef
from shipyard.sdk.errors import SpecError, UserError
from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.model import Diagnostic, Resource
from shipyard.sdk.planes import DesiredContext, Target


@dataclass(frozen=True)
class Validation:
    specs: SpecSet
    findings: tuple[Diagnostic, ...]


@dataclass(frozen=True)
class PlanResult:
    plan: Plan
    findings: tuple[Diagnostic, ...]


def validate(registry: Registry, root: Path) -> Validation:
    """Load every spec (SpecError lists every problem) and run the spec-only policies."""
    specs = load_specs(root, registry.kinds)
    return Validation(specs, tuple(run_policies(registry.policies, specs)))


def desired_state(
    registry: Registry, root: Path, specs: SpecSet, environment: str, *, live: bool = True
) -> list[Resource]:
    for plane in registry.planes:
        plane.warm_up(root)
    ctx = DesiredContext(root=root, specs=specs, environment=environment, live=live)
    return [resource for plane in registry.planes for resource in plane.desired(ctx)]


def observed_state(registry: Registry, target: Target) -> list[Resource]:
    return [resource for plane in registry.planes for resource in plane.observe(target)]


def plan(
    registry: Registry,
    root: Path,
    target: TargetRef,
    environment: str = "local",
    validation: Validation | None = None,
    *,
    check_data: bool = True,
) -> PlanResult:
    """The plan from ``target``'s state to this tree, with every policy finding.

    A cloud or local target plans its own environment's desired state; a base
    revision plans ``environment`` (a PR plan compares like with like).
    ``validation`` reuses specs the caller has already loaded and checked;
    ``check_data=False`` skips the planes' data checks (apply's verification needs only the diff).
    """
    if target.kind != "base":
        environment = target.name
    validation = validation or validate(registry, root)
    live = target.kind != "base"
    desired = desired_state(registry, root, validation.specs, environment, live=live)
    findings = validation.findings + tuple(
        run_policies([p for p in registry.policies if p.needs_resources], validation.specs, desired)
    )
    if check_data:
        ctx = DesiredContext(root=root, specs=validation.specs, environment=environment, live=live)
        findings += tuple(finding for plane in registry.planes for finding in plane.check(ctx))
    if target.kind == "base":
        observed = _desired_at(registry, root, target.revision, environment)
    else:
        observed = observed_state(registry, target.resolve(root))
    return PlanResult(make_plan(target.name, desired, observed, registry.rules), findings)


def _desired_at(registry: Registry, root: Path, revision: str, environment: str) -> list[Resource]:
    with checkout(root, revision) as tree:
        try:
            specs = load_specs(tree, registry.kinds)
        except SpecError as error:
            raise UserError(
                f"the specs at base revision '{revision}' do not validate ({error.message})",
                hint="plan against a revision whose specs are valid",
            ) from error
        # Positions from a temporary tree would point nowhere; the keys are what matter.
        return [
            Resource(r.plane, r.kind, r.key, r.body)
            for r in desired_state(registry, tree, specs, environment, live=False)
        ]
