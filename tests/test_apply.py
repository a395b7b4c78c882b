"""Apply executes exactly one plan: stale plans refused, locks, journal, resume, retries, verify."""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import Result, journal_entries, team_yaml, write
from shipyard.engine import planner
from shipyard.engine.apply import apply
from shipyard.engine.registry import Registry, discover
from shipyard.engine.state.identity import current_run
from shipyard.engine.state.lease import Holder
from shipyard.engine.targets import parse_target
from shipyard.sdk import (
    Action,
    Applier,
    ApplyError,
    Change,
    ChangesFailed,
    DesiredContext,
    LockHeld,
    Plane,
    Resource,
    StalePlanError,
    Target,
    TransientError,
    UserError,
)
from shipyard.sdk.store import ResourceStore

LOCAL = parse_target("local")


class Buckets(Plane):
    """A plane whose applier can be told to crash or flake, and counts its calls."""

    name = "buckets"
    order = 30

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.crash_on: str | None = None
        self.flaky = 0

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        for team in ctx.specs.of_kind("Team"):
            for purpose in ("datasets", "models"):
                yield Resource(self.name, "Bucket", team.name, purpose, {"gpu": team.spec.quota.gpu})

    def observe(self, ctx: DesiredContext, target: Target) -> Iterable[Resource]:
        return list(ResourceStore(target.state_dir / self.name))

    def appliers(self, target: Target) -> Mapping[str, Applier]:
        return {"Bucket": self.put}

    def put(self, change: Change, ctx: DesiredContext, target: Target) -> None:
        self.calls.append(change.key)
        if change.key == self.crash_on:
            raise RuntimeError("connection reset")
        if self.flaky:
            self.flaky -= 1
            raise TransientError("throttled")
        store = ResourceStore(target.state_dir / self.name)
        if change.action is Action.DELETE:
            store.delete(change.key)
        elif change.desired is not None:
            store.put(change.desired)


@pytest.fixture
def buckets() -> Buckets:
    return Buckets()


@pytest.fixture
def reg(buckets: Buckets) -> Registry:
    return discover(extra=[("buckets", types.SimpleNamespace(shipyard_planes=lambda: [buckets]))])


def journal(repo: Path) -> list[dict[str, str]]:
    return journal_entries(repo)


def test_apply_then_nothing_left_and_a_second_apply_does_nothing(reg: Registry, repo: Path, buckets: Buckets) -> None:
    report = apply(reg, repo, LOCAL)
    assert len(report.applied) == 16  # 2 teams x (6 tenancy objects + 2 buckets)
    assert report.applied[:6] == [k for k in report.applied if k.startswith("tenancy/fraud")]  # plane order
    assert not planner.plan(reg, repo, LOCAL).plan.has_changes
    calls = len(buckets.calls)
    assert apply(reg, repo, LOCAL).applied == []
    assert len(buckets.calls) == calls


def test_the_same_drift_twice_is_applied_twice(reg: Registry, repo: Path, buckets: Buckets) -> None:
    """A fresh plan whose hash an earlier, completed apply had (a server that stopped again) is due in full."""
    apply(reg, repo, LOCAL)
    store = ResourceStore(repo / ".shipyard/local/buckets")
    for _ in range(2):
        store.delete("buckets/fraud/Bucket/models")  # someone removes it behind our back
        assert apply(reg, repo, LOCAL).applied == ["buckets/fraud/Bucket/models"]
    assert not planner.plan(reg, repo, LOCAL).plan.has_changes


def test_a_crashed_apply_resumes_to_the_same_end_state_without_repeats(
    reg: Registry, repo: Path, buckets: Buckets
) -> None:
    reviewed = planner.plan(reg, repo, LOCAL).plan
    buckets.crash_on = "buckets/search/Bucket/datasets"
    with pytest.raises(ChangesFailed, match="run apply again to resume"):
        apply(reg, repo, LOCAL, reviewed=reviewed)
    done_before = {e["key"] for e in journal(repo) if e["event"] == "done"}
    assert "buckets/fraud/Bucket/models" in done_before
    assert [e["key"] for e in journal(repo) if e["event"] == "failed"] == ["buckets/search/Bucket/datasets"]

    buckets.crash_on = None
    buckets.calls.clear()
    report = apply(reg, repo, LOCAL, reviewed=reviewed)  # the same reviewed plan is still valid
    assert set(report.resumed) == done_before
    assert buckets.calls == ["buckets/search/Bucket/datasets", "buckets/search/Bucket/models"]
    assert not planner.plan(reg, repo, LOCAL).plan.has_changes
    assert journal(repo)[-1]["event"] == "complete"


def test_a_failed_change_stops_only_its_own_team(reg: Registry, repo: Path, buckets: Buckets) -> None:
    buckets.crash_on = "buckets/fraud/Bucket/datasets"
    with pytest.raises(ChangesFailed) as failure:
        apply(reg, repo, LOCAL)
    assert list(failure.value.failed) == ["buckets/fraud/Bucket/datasets"]
    assert "connection reset" in failure.value.failed["buckets/fraud/Bucket/datasets"]
    assert failure.value.skipped == ["buckets/fraud/Bucket/models"]  # after its team's failure: not tried
    assert failure.value.exit_code == 3  # a failed apply is an ApplyError
    assert "buckets/search/Bucket/models" in buckets.calls  # the other team still came up
    left = {c.key for c in planner.plan(reg, repo, LOCAL).plan.pending}
    assert left == {"buckets/fraud/Bucket/datasets", "buckets/fraud/Bucket/models"}
    assert journal(repo)[-1]["event"] != "complete"

    buckets.crash_on = None
    assert apply(reg, repo, LOCAL).applied == ["buckets/fraud/Bucket/datasets", "buckets/fraud/Bucket/models"]


def test_transient_errors_are_retried_with_backoff(reg: Registry, repo: Path, buckets: Buckets) -> None:
    waits: list[float] = []
    buckets.flaky = 3
    report = apply(reg, repo, LOCAL, sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]
    assert len(report.applied) == 16


def test_persistent_transient_errors_fail_after_the_last_retry(reg: Registry, repo: Path, buckets: Buckets) -> None:
    buckets.flaky = 100
    with pytest.raises(ChangesFailed, match="failed after 5 attempts: throttled"):
        apply(reg, repo, LOCAL, sleep=lambda s: None)


def test_a_reviewed_plan_is_refused_when_the_repo_changed(reg: Registry, repo: Path, buckets: Buckets) -> None:
    reviewed = planner.plan(reg, repo, LOCAL).plan
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud", gpu=6)})
    with pytest.raises(StalePlanError, match="stale"):
        apply(reg, repo, LOCAL, reviewed=reviewed)
    assert buckets.calls == []


def test_a_reviewed_plan_is_refused_when_the_target_changed(reg: Registry, repo: Path, buckets: Buckets) -> None:
    reviewed = planner.plan(reg, repo, LOCAL).plan
    original = (repo / "platform/teams/fraud.yaml").read_text()
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud", gpu=6)})
    apply(reg, repo, LOCAL)  # another change reached the target in between
    write(repo, {"platform/teams/fraud.yaml": original})
    buckets.calls.clear()
    with pytest.raises(StalePlanError):
        apply(reg, repo, LOCAL, reviewed=reviewed)
    assert buckets.calls == []


def test_the_same_plan_applied_twice_is_a_no_op(reg: Registry, repo: Path, buckets: Buckets) -> None:
    reviewed = planner.plan(reg, repo, LOCAL).plan
    apply(reg, repo, LOCAL, reviewed=reviewed)
    buckets.calls.clear()
    report = apply(reg, repo, LOCAL, reviewed=reviewed)
    assert (report.applied, len(report.resumed), buckets.calls) == ([], 16, [])


def test_a_plan_for_another_target_is_refused(reg: Registry, repo: Path) -> None:
    reviewed = planner.plan(reg, repo, parse_target("base:HEAD")).plan
    with pytest.raises(UserError, match="the plan is for target 'base:HEAD'"):
        apply(reg, repo, LOCAL, reviewed=reviewed)


def lock_file(repo: Path, expires: float | None = None, **run: object) -> Path:
    """A lock as another apply on this host would hold it (this test's own process by default)."""
    path = repo / ".shipyard/local/lock.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    me = current_run({})
    holder = Holder(
        replace(me, owner="ci@runner", **run), "", time.time(), time.time() + 600 if expires is None else expires
    )  # type: ignore[arg-type]
    path.write_bytes(holder.to_bytes())
    return path


def test_a_live_lock_holder_makes_apply_refuse(reg: Registry, repo: Path, buckets: Buckets) -> None:
    lock_file(repo)
    with pytest.raises(LockHeld, match="being applied by ci@runner"):
        apply(reg, repo, LOCAL)
    assert buckets.calls == []


@pytest.mark.parametrize("holder", [{"pid": 2**22 + 12345}, {"expires": 0.0}], ids=["dead pid", "expired lease"])
def test_an_abandoned_lock_is_taken_over(reg: Registry, repo: Path, holder: dict[str, object]) -> None:
    path = lock_file(repo, **holder)  # type: ignore[arg-type]
    assert len(apply(reg, repo, LOCAL).applied) == 16
    assert not path.exists()  # released afterwards


def test_a_plane_that_does_not_converge_fails_verification(reg: Registry, repo: Path, buckets: Buckets) -> None:
    buckets.put = lambda change, ctx, target: None  # type: ignore[method-assign]
    with pytest.raises(ApplyError, match="the target still differs for: buckets/fraud/Bucket/datasets"):
        apply(reg, repo, LOCAL)


def test_apply_a_reviewed_plan_file_through_the_cli(shipyard: Callable[..., Result], repo: Path) -> None:
    plan_file = repo / "plan.json"
    assert shipyard("plan", "--out", str(plan_file), repo=repo).code == 0
    first = shipyard("apply", "--plan", str(plan_file), repo=repo)
    assert first.code == 0, first.err
    assert "Applied 12 changes to local" in first.out
    second = shipyard("apply", "--plan", str(plan_file), repo=repo)  # already complete: a no-op
    assert (second.code, "Applied 0 changes" in second.out, "12 already done before" in second.out) == (0, True, True)
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud", gpu=7)})
    stale = shipyard("apply", "--plan", str(plan_file), repo=repo)
    assert stale.code == 1
    assert "is stale" in stale.err
    plan_file.write_text("{not json")
    assert "not a usable plan file" in shipyard("apply", "--plan", str(plan_file), repo=repo).err
