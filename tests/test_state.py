"""Apply state: the lock, the journal and the last-applied record, on files and on S3 (moto on loopback).

The guarantees are tested where they matter: eight applies started at once leave exactly one
writer; a crash at every change boundary converges to the uninterrupted end state; a
takeover of an expired lease and an explicit unlock are journaled; a lock or journal entry
that cannot be read is a clear error; a plan from another commit or that observed another
world is refused.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT, Result, commit, git, journal_entries, team_yaml, write
from lightplanes import end_state, light_registry
from shipyard.engine import planner
from shipyard.engine.apply import apply
from shipyard.engine.state.identity import current_run
from shipyard.engine.state.journal import Journal
from shipyard.engine.state.lease import LOCK, Holder, Lease, break_lock
from shipyard.engine.state.s3 import S3Store
from shipyard.engine.state.store import FileStore, ObjectStore
from shipyard.engine.targets import parse_target
from shipyard.sdk.errors import LockHeld, StalePlanError, TargetUnavailable, UserError
from shipyard.sdk.killpoints import sweep

LOCAL = parse_target("local")
LIGHT = [sys.executable, str(REPO_ROOT / "tests" / "lightplanes.py")]
BUCKET = "shipyard-dev-state"
CATALOG = "catalog/platform/Catalog/all"

ENVIRONMENT = f"""\
apiVersion: shipyard.dev/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec:
  state: {{bucket: {BUCKET}, prefix: shipyard/dev, region: us-east-1}}
"""


@pytest.fixture
def light(repo: Path) -> Path:
    write(repo, {"platform/environments/dev.yaml": ENVIRONMENT, ".gitignore": ".shipyard/\n.light/\n"})
    commit(repo, "an environment with a state bucket")
    return repo


@pytest.fixture
def state_bucket(aws: str) -> str:
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture(params=["files", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "files":
        return FileStore(tmp_path / "state")
    request.getfixturevalue("state_bucket")
    return S3Store(BUCKET, "shipyard/dev")


# -- the store: compare-and-swap on both homes -----------------------------------------------------


def test_create_replace_and_delete_only_win_against_what_was_read(store: ObjectStore) -> None:
    tag = store.create("lock.json", b"first")
    assert tag is not None
    assert store.create("lock.json", b"second") is None  # it exists: the second creator loses
    assert store.replace("lock.json", b"x", "not-the-tag") is None
    newer = store.replace("lock.json", b"third", tag)
    assert newer is not None
    assert store.replace("lock.json", b"fourth", tag) is None  # the tag moved on
    assert not store.delete("lock.json", tag)
    got = store.get("lock.json")
    assert (got.data if got else None) == b"third"
    assert store.delete("lock.json", newer)
    assert store.get("lock.json") is None


def test_names_list_one_prefix_sorted(store: ObjectStore) -> None:
    for name in ("journal/b/2.json", "journal/b/1.json", "journal/a/1.json", "applied.json"):
        store.put(name, b"{}")
    assert store.names("journal/b/") == ["journal/b/1.json", "journal/b/2.json"]


# -- the lease -------------------------------------------------------------------------------------


def _lease(store: ObjectStore, owner: str, **kwargs: object) -> Lease:
    run = replace(current_run({}), owner=owner)
    return Lease(store, Journal(store, run), run, "plan-1", **kwargs)  # type: ignore[arg-type]


def test_a_live_holder_is_named_with_its_run_url(store: ObjectStore) -> None:
    ci = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/ml", "GITHUB_RUN_ID": "42"}
    run = current_run(ci, "c0ffee" * 6)
    with Lease(store, Journal(store, run), run, "plan-1"), pytest.raises(LockHeld) as held:
        _lease(store, "bob").acquire()
    message = held.value.message
    assert "https://github.com/acme/ml/actions/runs/42" in message
    assert "at c0ffeec0ffee" in message
    assert " since " in message
    assert store.get(LOCK) is None  # released on exit


def test_an_expired_lease_is_taken_over_and_the_takeover_journaled(store: ObjectStore) -> None:
    clock = [1000.0]
    stale = _lease(store, "alice", lease_s=60, clock=lambda: clock[0])
    stale.acquire()
    stale._stop.set()  # it stopped renewing (a runner that vanished)
    clock[0] += 61
    taker = _lease(store, "bob", lease_s=60, clock=lambda: clock[0])
    taker.acquire()
    holder = Holder.parse(store.get(LOCK), "lock")  # type: ignore[arg-type]
    assert holder.run.owner == "bob"
    [takeover] = taker.journal.entries("")
    assert (takeover["event"], "alice" in takeover["detail"]) == ("takeover", True)
    with pytest.raises(LockHeld, match="broken or taken over"):
        stale.renew() or stale.check()
    taker.release()


def test_a_live_holder_renews_its_lease_so_it_never_expires_under_it(store: ObjectStore) -> None:
    with _lease(store, "alice", lease_s=0.6):
        time.sleep(1.0)  # longer than the lease: only renewal keeps it
        with pytest.raises(LockHeld, match="alice"):
            _lease(store, "bob", lease_s=0.6).acquire()


def test_unlock_breaks_a_live_lock_journals_who_and_why_and_the_holder_stops(store: ObjectStore) -> None:
    holder = _lease(store, "alice")
    holder.acquire()
    run = replace(current_run({}), owner="oncall")
    broken = break_lock(store, Journal(store, run), "runner 1234 was cancelled")
    assert broken is not None
    assert broken.run.owner == "alice"
    [entry] = Journal(store, run).entries("")
    assert (entry["event"], entry["owner"]) == ("unlock", "oncall")
    assert "runner 1234 was cancelled" in entry["detail"]
    with pytest.raises(LockHeld, match="broken"):
        holder.renew() or holder.check()
    assert break_lock(store, Journal(store, run), "again") is None  # nothing left to break


def test_a_lock_that_is_not_json_is_held_not_abandoned(store: ObjectStore) -> None:
    store.put(LOCK, b"{torn")
    with pytest.raises(LockHeld, match="is not a Shipyard lock") as held:
        _lease(store, "bob").acquire()
    assert "shipyard unlock" in held.value.hint
    assert store.get(LOCK).data == b"{torn"  # type: ignore[union-attr]
    assert break_lock(store, Journal(store, current_run({})), "torn by a crash") is None
    assert store.get(LOCK) is None


def test_a_corrupted_journal_entry_is_named(store: ObjectStore) -> None:
    journal = Journal(store, current_run({}))
    journal.record("plan-1", "begin", "a/b/C/d")
    store.put("journal/plan-1/00000000000000000001-1-000000.json", b"not json")
    with pytest.raises(UserError, match=r"journal entry .*journal/plan-1/00000000000000000001-1-000000.json"):
        journal.entries("plan-1")


# -- eight applies at once -------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["local", "dev"])
def test_eight_applies_at_once_leave_exactly_one_writer(
    request: pytest.FixtureRequest, light: Path, target: str
) -> None:
    if target == "dev":
        request.getfixturevalue("state_bucket")
    # The winner holds the lock long enough for all eight to start, even on a loaded machine: with a short
    # hold, a late starter could find the lock already released and rightly win a second, later apply.
    applies = [
        subprocess.Popen(
            [*LIGHT, str(light), target, "--hold", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in applies]
    winners = [out for code, out, _ in results if code == 0]
    losers = [err for code, _, err in results if code == 1]
    assert len(winners) == 1, results
    assert len(losers) == 7, results
    assert all("the target is being applied by" in err and " since " in err for err in losers)
    calls = (light / ".light" / target / "calls.log").read_text().splitlines()
    # what one apply does: each shelf once, the catalog once; locally again over the new shelves (stage 2)
    catalog = 2 if target == "local" else 1
    assert sorted(calls) == sorted([*(c for c in calls if c.startswith("shelves/")), *[CATALOG] * catalog])
    assert len(calls) == 4 + catalog


# -- a crash at every boundary converges ----------------------------------------------------------


def test_a_crash_at_every_change_boundary_converges_to_the_same_end_state(light: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    pristine = tmp_path / "pristine"
    shutil.copytree(light, pristine)
    subprocess.run([*LIGHT, str(light), "local"], check=True, capture_output=True)
    baseline = end_state(light)

    def reset() -> None:
        shutil.rmtree(light)
        shutil.copytree(pristine, light)

    def converged(point: int) -> None:
        assert end_state(light) == baseline, f"killed at {point}"
        again = subprocess.run([*LIGHT, str(light), "local"], check=True, capture_output=True, text=True)
        assert again.stdout.startswith("applied 0 "), f"killed at {point}: a further apply changed something"

    points = sweep([*LIGHT, str(light), "local"], env=env, reset=reset, check=converged)
    # 4 shelves and a catalog in stage 1, the catalog again in stage 2: 3 boundaries each
    assert points == 18


# -- apply requirements ----------------------------------------------------------------------------


def test_a_plan_from_another_commit_is_refused(light: Path) -> None:
    registry = light_registry()
    reviewed = planner.plan(registry, light, LOCAL).plan
    write(light, {"README.md": "a later commit\n"})
    commit(light, "later")
    with pytest.raises(StalePlanError, match=r"made from commit [0-9a-f]{12}, but HEAD is [0-9a-f]{12}"):
        apply(registry, light, LOCAL, reviewed=reviewed)
    assert not (light / ".light").exists()


def test_a_plan_whose_observed_world_moved_is_refused(light: Path) -> None:
    registry = light_registry()
    apply(registry, light, LOCAL)
    reviewed = planner.plan(registry, light, LOCAL).plan
    shelf = next((light / ".light/local/shelves").glob("*.json"))
    data = json.loads(shelf.read_text())
    data["body"]["note"] = "edited by hand"  # moved outside Shipyard, in a field the plan would not touch
    shelf.write_text(json.dumps(data))
    with pytest.raises(StalePlanError, match=r"what it observed moved since \(shelves\)"):
        apply(registry, light, LOCAL, reviewed=reviewed)


def test_the_plan_records_its_commit_and_apply_prints_and_journals_the_run(
    shipyard: Callable[..., Result], light: Path
) -> None:
    head = git(light, "rev-parse", "HEAD").strip()
    plan_file = light / "plan.json"
    assert shipyard("plan", "--out", str(plan_file), repo=light).code == 0
    assert json.loads(plan_file.read_text())["plan"]["commit"] == head
    applied = shipyard("apply", "--plan", str(plan_file), repo=light)
    assert applied.code == 0, applied.err
    assert applied.out.startswith("Applying to local as ")
    [start] = [e for e in journal_entries(light) if e["event"] == "start"]
    assert start["run"]["commit"] == head


# -- bad state -------------------------------------------------------------------------------------


def test_a_missing_state_bucket_is_named_and_nothing_is_applied(aws: str, light: Path) -> None:
    with pytest.raises(UserError, match=f"the state bucket of s3://{BUCKET}/shipyard/dev/lock.json does not exist"):
        apply(light_registry(), light, parse_target("dev"))
    assert not (light / ".light").exists()


def test_missing_credentials_are_one_line_naming_how_to_provide_them(
    light: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never the network
    with pytest.raises(TargetUnavailable, match="no AWS credentials") as error:
        apply(light_registry(), light, parse_target("dev"))
    assert "AWS_PROFILE" in error.value.hint


def test_an_environment_without_a_state_bucket_cannot_be_applied(light: Path) -> None:
    write(light, {"platform/environments/dev.yaml": ENVIRONMENT.split("spec:")[0] + "spec: {}\n"})
    with pytest.raises(UserError, match="names no state bucket") as error:
        apply(light_registry(), light, parse_target("dev"))
    assert "spec.state.bucket" in error.value.hint


def test_unlock_through_the_cli(shipyard: Callable[..., Result], light: Path) -> None:
    _lease(FileStore(light / ".shipyard/local"), "alice").acquire()
    assert "reason" in shipyard("unlock", repo=light).err  # --reason is required
    broken = shipyard("unlock", "--reason", "a killed runner", repo=light)
    assert broken.code == 0, broken.err
    assert "Broke the lock of alice" in broken.out
    assert "was not locked" in shipyard("unlock", "--reason", "again", repo=light).out


# -- drift -----------------------------------------------------------------------------------------


def test_drift_tells_changes_outside_shipyard_from_changes_not_yet_applied(
    shipyard: Callable[..., Result], repo: Path
) -> None:
    before = shipyard("drift", repo=repo)
    assert (before.code, "nothing has been applied to 'local' yet" in before.err) == (1, True)
    assert shipyard("apply", repo=repo).code == 0
    clean = shipyard("drift", repo=repo)
    assert (clean.code, clean.out) == (
        0,
        "No drift on local: it matches its last apply, and HEAD has nothing new to apply.\n",
    )

    write(repo, {"platform/teams/search.yaml": team_yaml("search", gpu=4)})  # merged, not applied
    quota = next((repo / ".shipyard/local/tenancy").glob("*fraud*ResourceQuota*"))
    quota.unlink()  # deleted by hand
    found = shipyard("drift", "--format", "json", repo=repo)
    assert found.code == 2, found.err
    report = json.loads(found.out)
    [outside] = report["outside"]
    assert (outside["key"], outside["what"]) == (
        "tenancy/fraud/ResourceQuota/team-quota",
        "gone from the target (deleted or stopped outside Shipyard)",
    )
    assert all(field["live"] is None for field in outside["fields"])
    pending = {entry["key"]: entry for entry in report["pending"]}
    gpu = [f for f in pending["tenancy/search/ResourceQuota/team-quota"]["fields"] if "nvidia.com/gpu" in f["field"]]
    assert [(f["applied"], f["HEAD"]) for f in gpu] == [("2", "4")]

    markdown = shipyard("drift", "--format", "markdown", repo=repo)
    assert markdown.code == 2
    assert markdown.out.startswith("<!-- shipyard-drift:local -->\n## Drift on `local`")
    assert "### Changed outside Shipyard" in markdown.out
    assert "### Not yet applied" in markdown.out

    assert shipyard("apply", repo=repo).code == 0  # the fix for both is an apply
    assert shipyard("drift", repo=repo).code == 0


# -- the local lock under a real race (the audit found two holders in 92 of 300 trials) ------------


def _take_once(folder: str, start: Any, tried: Any, held: Any) -> None:
    store = FileStore(Path(folder))
    run = current_run({})
    lease = Lease(store, Journal(store, run), run, same_machine=True)
    start.wait()
    try:
        lease.acquire()
    except LockHeld:
        tried.wait()
        return
    with held.get_lock():
        held.value += 1
    tried.wait()  # hold it until every taker has tried
    lease.release()


@pytest.mark.parametrize("stale", [False, True], ids=["free", "abandoned lock present"])
def test_eight_local_takers_released_together_leave_one_holder(tmp_path: Path, stale: bool) -> None:
    context = multiprocessing.get_context("fork")
    for trial in range(25):
        folder = tmp_path / f"trial-{trial}"
        if stale:  # a holder whose process is gone: every taker sees it abandoned at once
            dead = replace(current_run({}), pid=2**22 + 7)
            FileStore(folder).put(LOCK, Holder(dead, "", time.time(), time.time() + 600).to_bytes())
        start, tried, held = context.Barrier(8), context.Barrier(8), context.Value("i", 0)
        takers = [context.Process(target=_take_once, args=(str(folder), start, tried, held)) for _ in range(8)]
        for taker in takers:
            taker.start()
        for taker in takers:
            taker.join(30)
        assert [t.exitcode for t in takers] == [0] * 8
        assert held.value == 1, f"trial {trial}: {held.value} holders"


def test_a_state_bucket_that_is_not_readable_names_the_permissions_needed() -> None:
    """AWS answers 403 where moto (no IAM) would not: botocore's own Stubber plays that answer."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stubber = Stubber(client)
    stubber.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
    with (
        stubber,
        pytest.raises(TargetUnavailable, match=rf"not allowed to use the state at s3://{BUCKET}/p/lock.json") as error,
    ):
        S3Store(BUCKET, "p", client=client).get(LOCK)
    assert "s3:PutObject" in error.value.hint


def test_a_corrupted_last_applied_record_is_named(shipyard: Callable[..., Result], repo: Path) -> None:
    assert shipyard("apply", repo=repo).code == 0
    record = repo / ".shipyard/local/applied.json"
    record.write_text('{"format": "shipyard.dev/applied/v1", "resources": [')
    found = shipyard("drift", repo=repo)
    assert found.code == 1
    assert f"the last-applied record {record} is corrupted" in found.err
    assert "Traceback" not in found.err
