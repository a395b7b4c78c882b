"""Applies exactly a Plan: lock, check it is not stale, journal, apply in order, verify, then any stage 2.

Stage 1 is the plan as reviewed: each Change goes to the applier its kind maps to, which
executes it and never decides again. Where stage 1 moved facts another plane pinned (a
training run registered the version that promotion gates), the engine pins and plans those
planes again and applies that as stage 2: a plan of its own, journaled and shown. Only the
local target has a stage 2; a cloud target applies the reviewed plan and nothing else, and
what stage 1 made possible is planned and reviewed next.

The lock, the journal and the last-applied record live in the target's state
(``engine/state``): files for ``local``, the environment's state bucket for a cloud target,
so CI runners that come and go share them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from shipyard.core.plan import Plan, change_digest
from shipyard.core.policies import blocking
from shipyard.engine import planner
from shipyard.engine.registry import Registry
from shipyard.engine.revisions import head_commit
from shipyard.engine.state.applied import Applied, read_applied, write_applied
from shipyard.engine.state.home import open_store
from shipyard.engine.state.identity import RunIdentity, current_run
from shipyard.engine.state.journal import Journal
from shipyard.engine.state.lease import Lease
from shipyard.engine.state.store import FileStore
from shipyard.engine.targets import TargetRef
from shipyard.sdk.errors import (
    ApplyError,
    ChangesFailed,
    PolicyViolation,
    ShipyardError,
    StalePlanError,
    TransientError,
    UserError,
)
from shipyard.sdk.extras import missing_dependency
from shipyard.sdk.model import Action, Change
from shipyard.sdk.planes import DesiredContext, Target

RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class Stage:
    """One plan applied in one apply: stage 1 is the reviewed plan; stage 2 re-plans ``planes``
    (whose pinned facts stage 1 moved)."""

    number: int
    plan: Plan
    planes: tuple[str, ...] = ()


@dataclass
class ApplyReport:
    plan: Plan
    stages: list[Stage] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def apply(
    registry: Registry,
    root: Path,
    ref: TargetRef,
    *,
    reviewed: Plan | None = None,
    environ: Mapping[str, str] | None = None,
    on_start: Callable[[RunIdentity], None] = lambda run: None,
    on_change: Callable[[Change], None] = lambda change: None,
    on_stage: Callable[[Stage], None] = lambda stage: None,
    sleep: Callable[[float], None] = time.sleep,
) -> ApplyReport:
    """Apply ``reviewed`` (or a fresh plan when None) to ``ref``.

    A reviewed plan is refused when it was made from another commit than HEAD, or for
    another target, or when a fresh plan no longer matches it (what it observed moved, or
    its changes would differ), except for changes this plan already finished (the journal
    says so): that is how a crashed apply resumes to the same end state without repeating
    anything. ``environ`` gives the run's identity (the CI run URL) and the test-only kill
    points; nothing else is read from the process environment.

    A change that fails stops the later changes of its scope (team or stack) only; the
    other scopes' changes are applied and verified, then ChangesFailed reports what failed.
    """
    environ = environ or {}
    commit = head_commit(root)
    if reviewed is not None:
        _refuse_if_not_for(reviewed, ref, commit)
    # Bad specs and mandatory spec policies stop apply before it touches anything, lock included.
    checked = planner.validate(registry, root)
    if blocking(checked.findings):
        raise PolicyViolation(blocking(checked.findings))
    target = ref.resolve(root)
    store = open_store(target, checked.specs)
    run = current_run(environ, commit)
    journal = Journal(store, run, environ)
    lease = Lease(store, journal, run, reviewed.hash if reviewed else "", same_machine=isinstance(store, FileStore))
    with lease:
        fresh = planner.plan(registry, root, ref, validation=checked)
        if blocking(fresh.findings):
            raise PolicyViolation(blocking(fresh.findings))
        assert fresh.target is not None  # resolve() refused a base revision
        plan = reviewed or fresh.plan
        # A reviewed plan applied again after it completed is a no-op; a fresh plan is due in full.
        finished = journal.done(plan.hash, unfinished_run=reviewed is None)
        _refuse_if_stale(plan, fresh.plan, finished, _touched(journal, plan.hash))
        on_start(run)
        journal.record(plan.hash, "start", detail=f"{len(plan.pending)} changes to {ref.name}")
        report = ApplyReport(plan)
        runner = _Run(registry, journal, lease, report, on_change, sleep)
        first = Stage(1, plan)
        report.stages.append(first)
        touched = runner.stage(first, fresh.contexts, fresh.target, finished)
        latest = _verify(registry, root, ref, checked, plan, touched) or fresh
        if touched and fresh.target.is_local:
            second = _downstream(latest.plan, plan)
            if second.plan.has_changes:
                report.stages.append(second)
                on_stage(second)
                journal.record(second.plan.hash, "stage", detail=f"2 after {plan.hash}")
                assert latest.target is not None
                touched = runner.stage(second, latest.contexts, latest.target, set())
                latest = _verify(registry, root, ref, checked, second.plan, touched) or latest
                journal.record(second.plan.hash, "complete")
        if report.failed:
            raise ChangesFailed(report.failed, report.skipped)
        write_applied(store, _now_applied(read_applied(store), latest.plan, registry, commit))
        journal.record(plan.hash, "complete")
        return report


def _now_applied(previous: Applied | None, latest: Plan, registry: Registry, commit: str) -> Applied:
    """The last-applied record after a successful apply: what the target now matches.

    A key the final plan still has pending (a cloud target's models plane waits for the
    next reviewed plan) keeps what was last applied to it.
    """
    previous = previous or Applied()
    in_sync = [c.desired for c in latest.changes if c.action is Action.NOOP and c.desired is not None]
    waiting = [previous.resources[c.key] for c in latest.pending if c.key in previous.resources]
    return previous.merged(latest.hash, commit, [p.name for p in registry.planes], [*in_sync, *waiting])


class _Run:
    """Applies the changes of each stage in order, stopping a scope at its first failure."""

    def __init__(
        self,
        registry: Registry,
        journal: Journal,
        lease: Lease,
        report: ApplyReport,
        on_change: Callable[[Change], None],
        sleep: Callable[[float], None],
    ) -> None:
        self.registry = registry
        self.journal = journal
        self.lease = lease
        self.report = report
        self.on_change = on_change
        self.sleep = sleep
        self.stopped: set[tuple[str, str]] = set()  # (plane group, scope): teams and stacks stop apart

    def stage(self, stage: Stage, ctxs: Mapping[str, DesiredContext], target: Target, finished: set[str]) -> list[str]:
        """Apply a stage's pending changes; returns the keys it applied."""
        applied: list[str] = []
        for change in stage.plan.pending:
            if change.key in finished:
                self.report.resumed.append(change.key)
                continue
            if _scope(change) in self.stopped:
                self.report.skipped.append(change.key)
                continue
            self.lease.check()  # broken by shipyard unlock: stop before the next change
            self.on_change(change)
            self.journal.record(stage.plan.hash, "begin", change.key)
            try:
                ctx = replace(ctxs[change.plane], plan=stage.plan.hash, commit=stage.plan.commit)
                _apply_one(self.registry, change, ctx, target, self.sleep)
            except ShipyardError as error:  # an applier's unexplained crash arrives here as ApplyError
                self.journal.record(stage.plan.hash, "failed", change.key, str(error))
                self.report.failed[change.key] = error.message
                self.stopped.add(_scope(change))
                continue
            self.journal.record(stage.plan.hash, "done", change.key)
            self.report.applied.append(change.key)
            applied.append(change.key)
        return applied


def _scope(change: Change) -> tuple[str, str]:
    """What a failure stops: the rest of its team's changes (in plane order), or the rest of its stack's.

    Infra's scopes are stacks; every other plane's are teams, so a team's feature failure
    stops its pipelines and models too.
    """
    return ("infra" if change.plane == "infra" else "teams", change.scope)


def _downstream(after: Plan, applied: Plan) -> Stage:
    """Stage 2: the pending changes of the planes whose pinned facts moved while stage 1 applied."""
    planes = after.facts.keys() | applied.facts.keys()
    moved = tuple(sorted(p for p in planes if after.facts.get(p) != applied.facts.get(p)))
    changes = tuple(c for c in after.changes if c.plane in moved)
    return Stage(2, Plan(after.target, changes, {p: after.facts[p] for p in moved if p in after.facts}), moved)


def _refuse_if_not_for(reviewed: Plan, ref: TargetRef, commit: str) -> None:
    """Apply requirements: the plan is for this target and was made from the commit checked out."""
    if reviewed.target != ref.name:
        raise UserError(f"the plan is for target '{reviewed.target}', not '{ref.name}'")
    if reviewed.commit != commit:
        raise StalePlanError(
            f"the plan was made from commit {reviewed.commit[:12] or '(none)'}, but HEAD is {commit[:12] or '(none)'}",
            hint="apply a plan made from this commit: shipyard plan --out plan.json, review it, then apply it",
        )


def _touched(journal: Journal, plan_hash: str) -> set[str]:
    """Planes an earlier run of this plan began changing: what they observe moved by our own hand."""
    return {key.split("/", 1)[0] for event, key in journal.events(plan_hash) if event == "begin"}


def _refuse_if_stale(plan: Plan, fresh: Plan, finished: set[str], touched: Collection[str] = ()) -> None:
    moved = sorted(p for p, seen in plan.observed.items() if p not in touched and fresh.observed.get(p) != seen)
    if moved:
        raise StalePlanError(
            f"the reviewed plan {plan.hash[:12]} is stale: what it observed moved since ({', '.join(moved)})",
            hint="run shipyard plan again and review the new plan",
        )
    expected = {change_digest(c) for c in plan.pending if c.key not in finished}
    actual = {change_digest(c) for c in fresh.pending}
    if expected != actual:
        drifted = sorted({c.key for c in plan.pending if c.key not in finished} ^ {c.key for c in fresh.pending})
        if not drifted:  # the same keys, other content: name those whose content moved
            before = {c.key: change_digest(c) for c in plan.pending}
            drifted = sorted(c.key for c in fresh.pending if before.get(c.key) != change_digest(c))
        raise StalePlanError(
            f"the reviewed plan {plan.hash[:12]} is stale: the target or the repo changed since "
            f"({', '.join(drifted[:5])})",
            hint="run shipyard plan again and review the new plan",
        )


def _apply_one(
    registry: Registry, change: Change, ctx: DesiredContext, target: Target, sleep: Callable[[float], None]
) -> None:
    plane = registry.plane(change.plane)
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
        try:
            plane.apply(change, ctx, target)
            return
        except TransientError as error:
            if delay is None:
                raise ApplyError(
                    f"{change.action} {change.key} failed after {attempt + 1} attempts: {error.message}",
                    hint="run apply again to resume",
                ) from error
            sleep(delay)
        except ShipyardError:
            raise
        except Exception as error:
            if isinstance(error, ModuleNotFoundError) and (missing := missing_dependency(error)):
                raise missing from error
            raise ApplyError(
                f"{change.action} {change.key} failed: {type(error).__name__}: {error}",
                hint="run apply again to resume; --verbose shows the traceback",
            ) from error


def _verify(
    registry: Registry, root: Path, ref: TargetRef, checked: planner.Validation, applied: Plan, touched: list[str]
) -> planner.PlanResult | None:
    """Pin and observe again: every key this stage changed must now match the repo, but those
    of planes whose pinned facts the stage moved (they are planned again: stage 2, or the next
    reviewed plan).

    Returns that fresh plan (what a stage 2 is taken from), or None when nothing was applied.
    """
    if not touched:
        return None
    # Only the diff matters here; the data checks already passed before anything was applied.
    after = planner.plan(registry, root, ref, validation=checked, check_data=False)
    moved = {
        p for p in after.plan.facts.keys() | applied.facts.keys() if after.plan.facts.get(p) != applied.facts.get(p)
    }
    leftover = [c.key for c in after.plan.pending if c.key in set(touched) and c.plane not in moved]
    if leftover:
        raise ApplyError(f"applied, but the target still differs for: {', '.join(leftover)}")
    return after
