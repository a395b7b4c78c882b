"""Lean plan files: an unchanged Resource is listed by identity and change digest, its bodies only with --full.

A lean file reads back to a plan with the same hash as the full one, and applies the same; an edit
to what a lean entry keeps (its digest, its key, its action) is caught like any other edit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Result, team_yaml, write
from shipyard.core.plan import Plan, change_digest, make_plan
from shipyard.sdk.errors import UserError
from shipyard.sdk.model import Action, Resource

RULES = {"tenancy": (20, {}), "models": (50, {})}
Run = Callable[..., Result]


def r(name: str, body: dict[str, Any], plane: str = "tenancy", **extra: Any) -> Resource:
    return Resource(plane, "Thing", "team", name, body, **extra)


def sample() -> Plan:
    """Every action, a payload, facts, and the fields a CLI plan binds (observed, commit, base)."""
    desired = [
        r("same", {"spec": {"v": 1}}),
        r("edited", {"spec": {"v": 2}}),
        r("new", {"spec": {"v": 3}}, plane="models", payload={"compiled": {"ir": 1}}),
        r("also-same", {"spec": {"big": "x" * 100}}, plane="models", payload={"digest": "abc"}),
    ]
    observed = [r("same", {"spec": {"v": 1}}), r("edited", {"spec": {"v": 1}}), r("gone", {})]
    observed.append(r("also-same", {"spec": {"big": "x" * 100}}, plane="models"))
    made = make_plan("dev", desired, observed, RULES, facts={"models": {"latest": 3}})
    return Plan(made.target, made.changes, made.facts, {"tenancy": "f1"}, "c0ffee", "ba5e")


def roundtrip(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(data))
    return result


def test_unchanged_resources_are_listed_by_digest_and_read_back_with_the_same_hash() -> None:
    plan = sample()
    lean, full = roundtrip(plan.to_dict()), roundtrip(plan.to_dict(full=True))
    noops = [c for c in lean["changes"] if c["action"] == "noop"]
    assert len(noops) == 2
    for entry, change in zip(noops, [c for c in plan.changes if c.action is Action.NOOP], strict=True):
        assert entry == {
            "key": change.key,
            "plane": change.plane,
            "kind": change.kind,
            "scope": change.scope,
            "name": change.name,
            "action": "noop",
            "digest": change_digest(change),
        }
    # what is pending is written in full either way
    assert [c for c in lean["changes"] if c["action"] != "noop"] == [
        c for c in full["changes"] if c["action"] != "noop"
    ]
    assert lean["hash"] == full["hash"] == plan.hash
    from_lean, from_full = Plan.from_dict(lean), Plan.from_dict(full)
    assert from_full == plan
    assert from_lean.hash == from_full.hash == plan.hash
    assert from_lean.pending == plan.pending
    assert from_lean.counts() == plan.counts()
    # a lean plan read back writes itself out again unchanged, even when asked for its full form
    assert roundtrip(from_lean.to_dict()) == lean
    assert roundtrip(from_lean.to_dict(full=True))["changes"] == lean["changes"]


def test_the_hash_still_covers_an_unchanged_resources_body_and_payload() -> None:
    def plan(body: dict[str, Any], payload: dict[str, Any]) -> Plan:
        return make_plan("dev", [r("a", body, payload=payload)], [r("a", body)], RULES)

    one, other_body, other_payload = plan({"v": 1}, {}), plan({"v": 2}, {}), plan({"v": 1}, {"p": 1})
    assert [c.action for c in one.changes] == [Action.NOOP]
    assert len({one.hash, other_body.hash, other_payload.hash}) == 3
    assert Plan.from_dict(roundtrip(other_payload.to_dict())).hash == other_payload.hash


def test_a_plan_of_unchanged_resources_is_much_smaller_lean() -> None:
    bodies = [{"spec": {"replicas": i, "labels": {f"k{j}": "v" * 20 for j in range(10)}}} for i in range(2_000)]
    resources = [Resource("tenancy", "Thing", f"team-{i}", "quota", body) for i, body in enumerate(bodies)]
    edited = Resource("tenancy", "Thing", "team-0", "quota", {"spec": {"replicas": -1}})
    plan = make_plan("dev", [edited, *resources[1:]], resources, RULES)
    assert plan.counts()[Action.NOOP] == 1_999
    lean, full = json.dumps(plan.to_dict()), json.dumps(plan.to_dict(full=True))
    assert len(lean) * 5 < len(full), (len(lean), len(full))
    assert Plan.from_dict(json.loads(lean)).hash == Plan.from_dict(json.loads(full)).hash


def noop_entry(data: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in data["changes"] if c["action"] == "noop")


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda e: e.update(digest="0" * 64), id="digest"),
        pytest.param(lambda e: e.update(key="tenancy/team/Thing/other"), id="key"),
        pytest.param(lambda e: e.update(name="other", key="tenancy/team/Thing/other"), id="name-and-key"),
        pytest.param(lambda e: e.update(scope="elsewhere"), id="scope"),
    ],
)
def test_an_edited_unchanged_entry_is_refused(edit: Callable[[dict[str, Any]], None]) -> None:
    data = roundtrip(sample().to_dict())
    edit(noop_entry(data))
    with pytest.raises(UserError, match="edited after it was made"):
        Plan.from_dict(data)


def test_a_pending_change_cannot_pass_for_an_unchanged_one() -> None:
    plan = sample()
    data = roundtrip(plan.to_dict())
    update = next(c for c in plan.changes if c.action is Action.UPDATE)
    index = plan.changes.index(update)
    identity = {k: data["changes"][index][k] for k in ("key", "plane", "kind", "scope", "name")}
    # listed by its own digest, but as unchanged: it would drop out of what apply does
    data["changes"][index] = identity | {"action": "noop", "digest": change_digest(update)}
    with pytest.raises(UserError, match="edited after it was made"):
        Plan.from_dict(data)
    # and a lean entry that claims to do something has nothing to do it with
    data["changes"][index] = identity | {"action": "update", "digest": change_digest(update)}
    with pytest.raises(UserError, match="only an unchanged resource is listed by digest alone"):
        Plan.from_dict(data)


def test_plan_writes_lean_json_and_full_with_the_flag(shipyard: Run, repo: Path) -> None:
    assert shipyard("apply", repo=repo).code == 0
    lean_file, full_file = repo / "lean.json", repo / "full.json"
    lean = shipyard("plan", "--format", "json", "--out", str(lean_file), repo=repo)
    full = shipyard("plan", "--format", "json", "--full", "--out", str(full_file), repo=repo)
    assert (lean.code, full.code) == (0, 0)
    assert json.loads(lean.out) == json.loads(lean_file.read_text())
    assert json.loads(full.out) == json.loads(full_file.read_text())
    lean_changes = json.loads(lean.out)["plan"]["changes"]
    full_changes = json.loads(full.out)["plan"]["changes"]
    assert lean_changes
    assert all(c["action"] == "noop" for c in lean_changes)
    assert all("digest" in c and "desired" not in c for c in lean_changes)
    # --full is the format plan files had before: every change with its diffs and bodies
    assert all(c.keys() >= {"source", "diffs", "desired", "observed"} and "digest" not in c for c in full_changes)
    assert Plan.from_dict(json.loads(lean.out)["plan"]).hash == Plan.from_dict(json.loads(full.out)["plan"]).hash


@pytest.mark.parametrize("flags", [(), ("--full",)], ids=["lean", "full"])
def test_apply_a_reviewed_plan_file_with_unchanged_resources(shipyard: Run, repo: Path, flags: tuple[str, ...]) -> None:
    assert shipyard("apply", repo=repo).code == 0
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud", gpu=7)})
    plan_file = repo / "plan.json"
    assert shipyard("plan", "--out", str(plan_file), *flags, repo=repo).code == 0
    changes = json.loads(plan_file.read_text())["plan"]["changes"]
    assert sum(c["action"] == "noop" for c in changes) == 11
    assert all(("desired" in c) == bool(flags) for c in changes if c["action"] == "noop")

    tampered = json.loads(plan_file.read_text())
    noop_entry(tampered["plan"]).update(key="tenancy/fraud/Namespace/elsewhere")
    edited_file = repo / "edited.json"
    edited_file.write_text(json.dumps(tampered))
    edited = shipyard("apply", "--plan", str(edited_file), repo=repo)
    assert edited.code == 1
    assert "edited after it was made" in edited.err

    applied = shipyard("apply", "--plan", str(plan_file), repo=repo)
    assert applied.code == 0, applied.err
    assert "Applied 1 changes to local" in applied.out
    assert "update  tenancy/fraud/ResourceQuota/team-quota" in applied.out
    again = shipyard("apply", "--plan", str(plan_file), repo=repo)
    assert (again.code, "Applied 0 changes" in again.out, "1 already done before" in again.out) == (0, True, True)
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud", gpu=6)})
    stale = shipyard("apply", "--plan", str(plan_file), repo=repo)
    assert stale.code == 1
    assert "is stale" in stale.err
