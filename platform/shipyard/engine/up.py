"""``shipyard up``: the whole platform on this machine, through the same plan and apply as the cloud.

Steps, each timed: validate the repo; start the plugins' local services (or find them
running); let each plane prepare what a laptop lacks (synthetic data); plan and apply the
local target (with its stage 2); ask each plane for a smoke request. A team whose change
fails does not stop the others: the report says what failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shipyard.core.policies import blocking
from shipyard.engine import planner
from shipyard.engine.apply import ApplyReport, Stage, apply
from shipyard.engine.local import Running, start_services
from shipyard.engine.registry import Registry
from shipyard.engine.targets import parse_target
from shipyard.sdk.errors import ChangesFailed, PolicyViolation
from shipyard.sdk.model import Change, Diagnostic
from shipyard.sdk.planes import SmokeResult

#: Shown for a change an earlier failure of its team kept from being tried.
NOT_TRIED = "not tried: an earlier change of its team failed"


class Steps(Protocol):
    """How ``up`` shows progress: ``run`` wraps one step and yields a function that says what it is doing now."""

    def run(self, name: str, doing: str) -> AbstractContextManager[Callable[[str], None]]: ...


@dataclass
class UpReport:
    findings: tuple[Diagnostic, ...] = ()
    services: list[Running] = field(default_factory=list)
    prepared: list[str] = field(default_factory=list)
    applied: ApplyReport | None = None
    failed: dict[str, str] = field(default_factory=dict)
    smoked: list[SmokeResult] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and all(result.ok for result in self.smoked)


def up(
    registry: Registry,
    root: Path,
    steps: Steps,
    *,
    on_change: Callable[[Change], None] = lambda change: None,
    on_stage: Callable[[Stage], None] = lambda stage: None,
    environ: Mapping[str, str] | None = None,
) -> UpReport:
    """Bring the local platform up; raises only for what stops every team (bad specs, a service that cannot start).

    ``environ`` goes to apply (the run's identity, the test-only kill points).
    """
    report = UpReport()
    local = parse_target("local")
    with steps.run("validate", "validating specs and policies"):
        checked = planner.validate(registry, root)
        report.findings = checked.findings
        if blocking(checked.findings):
            raise PolicyViolation(blocking(checked.findings))
    with steps.run("services", "starting local services") as doing:
        report.services = start_services(
            registry, root, lambda service: doing(f"starting {service.name}: {service.description}")
        )
    with steps.run("prepare", "preparing what the planes need locally (synthetic data)"):
        target = planner.resolve(registry, root, local)
        ctxs = planner.contexts(registry, root, checked.specs, "local", target=None)
        report.prepared = [line for plane in registry.planes for line in plane.prepare(ctxs[plane.name], target)]
    with steps.run("apply", "planning every plane") as doing:

        def started(change: Change) -> None:
            on_change(change)
            doing(f"{change.action.value} {change.key}")

        try:
            report.applied = apply(registry, root, local, environ=environ, on_change=started, on_stage=on_stage)
        except ChangesFailed as error:
            report.failed = error.failed | dict.fromkeys(error.skipped, NOT_TRIED)
    with steps.run("smoke", "sending each model a smoke request"):
        target = planner.resolve(registry, root, local)
        report.smoked = [result for plane in registry.planes for result in plane.smoke(ctxs[plane.name], target)]
    return report
