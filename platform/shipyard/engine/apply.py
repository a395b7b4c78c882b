"""Applies exactly a Plan: lock, check it is not stale, journal, apply in order, verify."""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.core.plan import Plan, change_digest
from shipyard.core.policies import blocking
from shipyard.engine import planner
from shipyard.engine.journal import Journal
from shipyard.engine.lock import TargetLock
from shipyard.engine.registry import Registry
from shipyard.engine.targets import TargetRef
from shipyard.sdk.errors import (
    ApplyError,
    ChangesFailed,
    PolicyViolation,
    StalePlanError,
    TransientError,
    UserError,
)
from shipyard.sdk.extras import missing_dependency
from shipyard.sdk.model import Change
from shipyard.sdk.planes import Target

RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)


@dataclass
class ApplyReport:
    plan: Plan
    applied: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def team_of(key: str) -> str:
    """The team a resource belongs to: keys are ``<plane>/<team>/...`` (for infra, the stack stands there).

    A team's changes run in plane order (features, then pipelines, then models), so a
    failure stops the rest of that team's changes; other teams go on.
    """
    return key.split("/", 2)[1] if key.count("/") >= 2 else key


def owner_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def apply(
    registry: Registry,
    root: Path,
    ref: TargetRef,
    *,
    reviewed: Plan | None = None,
    on_change: Callable[[Change], None] = lambda change: None,
    sleep: Callable[[float], None] = time.sleep,
) -> ApplyReport:
    """Apply ``reviewed`` (or a fresh plan when None) to ``ref``.

    A reviewed plan is refused when a fresh plan no longer matches it, except for
    changes this plan already finished (the journal says so): that is how a
    crashed apply resumes to the same end state without repeating anything.

    A change that fails stops the later changes of its team only; the other teams' changes
    are applied and verified, then ChangesFailed reports what failed (exit 1).
    """
    target = ref.resolve(root)
    if reviewed is not None and reviewed.target != ref.name:
        raise UserError(f"the plan is for target '{reviewed.target}', not '{ref.name}'")
    # Bad specs and mandatory spec policies stop apply before it touches anything, lock included.
    checked = planner.validate(registry, root)
    if blocking(checked.findings):
        raise PolicyViolation(blocking(checked.findings))
    owner = owner_name()
    with TargetLock(target.state_dir / "apply.lock", owner):
        fresh = planner.plan(registry, root, ref, validation=checked)
        if blocking(fresh.findings):
            raise PolicyViolation(blocking(fresh.findings))
        plan = reviewed or fresh.plan
        journal = Journal(target.state_dir / "journal.jsonl", owner)
        # A reviewed plan applied again after it completed is a no-op; a fresh plan is due in full.
        finished = journal.done(plan.hash, unfinished_run=reviewed is None)
        _refuse_if_stale(plan, fresh.plan, finished)
        report = ApplyReport(plan)
        stopped_teams: set[str] = set()
        for change in plan.pending:
            if change.key in finished:
                report.resumed.append(change.key)
                continue
            if team_of(change.key) in stopped_teams:
                report.skipped.append(change.key)
                continue
            on_change(change)
            journal.record(plan.hash, "begin", change.key)
            try:
                _apply_one(registry, change, target, sleep)
            except (ApplyError, UserError) as error:
                journal.record(plan.hash, "failed", change.key, str(error))
                report.failed[change.key] = str(error)
                stopped_teams.add(team_of(change.key))
                continue
            journal.record(plan.hash, "done", change.key)
            report.applied.append(change.key)
        _verify(registry, root, ref, report.applied, checked)
        if report.failed:
            raise ChangesFailed(report.failed, report.skipped)
        journal.record(plan.hash, "complete")
        return report


def _refuse_if_stale(plan: Plan, fresh: Plan, finished: set[str]) -> None:
    expected = {change_digest(c) for c in plan.pending if c.key not in finished}
    actual = {change_digest(c) for c in fresh.pending}
    if expected != actual:
        drifted = sorted({c.key for c in plan.pending if c.key not in finished} ^ {c.key for c in fresh.pending})
        changed = ", ".join(drifted[:5]) or "the content of planned changes"
        raise StalePlanError(
            f"the reviewed plan {plan.hash[:12]} is stale: the target or the repo changed since ({changed})",
            hint="run shipyard plan again and review the new plan",
        )


def _apply_one(registry: Registry, change: Change, target: Target, sleep: Callable[[float], None]) -> None:
    plane = registry.plane(change.plane)
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
        try:
            plane.apply(change, target)
            return
        except TransientError as error:
            if delay is None:
                raise ApplyError(
                    f"{change.action} {change.key} failed after {attempt + 1} attempts: {error}; "
                    "run apply again to resume"
                ) from error
            sleep(delay)
        except UserError:
            raise
        except Exception as error:
            if isinstance(error, ModuleNotFoundError) and (missing := missing_dependency(error)):
                raise missing from error
            raise ApplyError(f"{change.action} {change.key} failed: {error}; run apply again to resume") from error


def _verify(registry: Registry, root: Path, ref: TargetRef, applied: list[str], checked: planner.Validation) -> None:
    """Observe again: every key this apply changed must now match the repo."""
    touched = set(applied)
    if not touched:
        return
    # Only the diff matters here; the data checks already passed before anything was applied.
    after = planner.plan(registry, root, ref, validation=checked, check_data=False)
    leftover = [c.key for c in after.plan.pending if c.key in touched]
    if leftover:
        raise ApplyError(f"applied, but the target still differs for: {', '.join(leftover)}")
