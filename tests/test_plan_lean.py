"""Lean plan files: only pending changes are listed; unchanged Resources are counted per plane and scope.

A lean file reads back to a plan with the same hash as the full one (``--full``: every change with its
bodies), renders the same summary and applies the same; an edit to a group (its count, its digest, the
groups themselves) or an update passed off as unchanged is caught like any other edit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Result, team_yaml, write
from shipyard.core.plan import Plan, change_digest, make_plan
from shipyard.core.render.jsonout import render_json
from shipyard.core.render.markdown import render_markdown
from shipyard.core.render.text import render_text
from shipyard.sdk.errors import UserError
from shipyard.sdk.model import Action, Change, Resource

RULES = {"tenancy": (20, {}), "models": (50, {}), "features": (30, {})}
Run = Callable[..., Result]


def r(name: str, body: dict[str, Any], plane: str = "tenancy", scope: str = "team", **extra: Any) -> Resource:
    return Resource(plane, "Thing", scope, name, body, **extra)


def sample() -> Plan:
    """Every action, two unchanged Resources in one group, a payload, facts, and the fields a CLI plan binds."""
    desired = [
        r("same", {"spec": {"v": 1}}),
        r("edited", {"spec": {"v": 2}}),
        r("same-too", {"spec": {"v": 0}}),
        r("new", {"spec": {"v": 3}}, plane="models", payload={"compiled": {"ir": 1}}),
        r("also-same", {"spec": {"big": "x" * 100}}, plane="models", scope="other", payload={"digest": "abc"}),
    ]
    observed = [r("same", {"spec": {"v": 1}}), r("edited", {"spec": {"v": 1}}), r("gone", {})]
    observed += [r("same-too", {"spec": {"v": 0}}), r("also-same", {"spec": {"big": "x" * 100}}, "models", "other")]
    made = make_plan("dev", desired, observed, RULES, facts={"models": {"latest": 3}})
    return Plan(made.target, made.changes, made.facts, {"tenancy": "f1"}, "c0ffee", "ba5e")


def roundtrip(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(data))
    return result


def group_digest(changes: list[Change]) -> str:
    """What the file promises: sha256 of the canonical JSON of ``[[key, change digest], ...]`` in plan order."""
    pairs = [[c.key, change_digest(c)] for c in changes]
    return hashlib.sha256(json.dumps(pairs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def noops(plan: Plan, group: str) -> list[Change]:
    return [c for c in plan.changes if c.action is Action.NOOP and f"{c.plane}/{c.scope}" == group]


def test_unchanged_resources_are_counted_per_group_and_read_back_with_the_same_hash() -> None:
    plan = sample()
    lean, full = roundtrip(plan.to_dict()), roundtrip(plan.to_dict(full=True))
    # only what is pending is listed, in full and in plan order, exactly as the full file lists it
    assert [c["key"] for c in lean["changes"]] == [c.key for c in plan.pending]
    assert lean["changes"] == [c for c in full["changes"] if c["action"] != "noop"]
    assert lean["unchanged"] == {
        group: {"count": len(noops(plan, group)), "digest": group_digest(noops(plan, group))}
        for group in ("tenancy/team", "models/other")
    }
    assert lean["unchanged"]["tenancy/team"]["count"] == 2
    # --full is the format plan files had before they were lean
    assert "unchanged" not in full
    assert [c["key"] for c in full["changes"]] == [c.key for c in plan.changes]
    assert all(c.keys() >= {"source", "diffs", "desired", "observed"} for c in full["changes"])

    assert lean["hash"] == full["hash"] == plan.hash
    from_lean, from_full = Plan.from_dict(lean), Plan.from_dict(full)
    assert from_full == plan
    assert from_lean.hash == plan.hash
    assert from_lean.changes == plan.pending == from_lean.pending
    assert from_lean.unchanged == {g: (e["count"], e["digest"]) for g, e in lean["unchanged"].items()}
    assert from_lean.counts() == plan.counts()
    assert from_lean.to_dict()["summary"] == plan.to_dict()["summary"] == full["summary"]
    # every renderer's summary says the same "N unchanged" for the lean plan read back
    assert render_text(from_lean).plain.splitlines()[-1] == render_text(plan).plain.splitlines()[-1]
    assert "Plan: 1 to create, 1 to update, 1 to delete, 3 unchanged." in render_markdown(from_lean)
    # a lean plan read back writes itself out again unchanged, even when asked for its full form
    assert roundtrip(from_lean.to_dict()) == lean
    assert roundtrip(from_lean.to_dict(full=True)) == lean


def test_the_hash_still_covers_an_unchanged_resources_key_body_and_payload() -> None:
    def plan(body: dict[str, Any], payload: dict[str, Any], name: str = "a") -> Plan:
        return make_plan("dev", [r(name, body, payload=payload)], [r(name, body)], RULES)

    one, other_body, other_payload = plan({"v": 1}, {}), plan({"v": 2}, {}), plan({"v": 1}, {"p": 1})
    renamed = plan({"v": 1}, {}, name="b")
    assert [c.action for c in one.changes] == [Action.NOOP]
    assert len({one.hash, other_body.hash, other_payload.hash, renamed.hash}) == 4
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


def test_a_one_field_change_at_500_teams_is_a_plan_file_under_a_megabyte() -> None:
    """Issue 18: ~20,000 unchanged Resources over 500 teams; a listing per Resource could not fit."""
    teams = [f"t{i:04d}" for i in range(500)]

    def body(plane: str, team: str, n: int) -> dict[str, Any]:
        labels = {"app.kubernetes.io/managed-by": "shipyard", "shipyard.dev/team": team, "shipyard.dev/plane": plane}
        return {"apiVersion": "v1", "metadata": {"name": f"{team}-{n}", "namespace": team, "labels": labels}}

    per_team = {"tenancy": 12, "features": 8, "models": 20}  # 40 a team
    resources = [
        Resource(plane, "Thing", team, f"thing-{n}", body(plane, team, n))
        for team in teams
        for plane, count in per_team.items()
        for n in range(count)
    ]
    edited = Resource("tenancy", "Thing", "t0000", "thing-0", {**resources[0].body, "spec": {"gpu": "8"}})
    plan = make_plan("base:HEAD", [edited, *resources[1:]], resources, RULES)
    assert plan.counts() == {Action.NOOP: 19_999, Action.UPDATE: 1}

    lean, full = render_json(plan), render_json(plan, full=True)
    assert len(lean.encode()) < 1_000_000, len(lean.encode())
    assert len(full.encode()) > 10 * len(lean.encode()), (len(lean.encode()), len(full.encode()))
    data = json.loads(lean)["plan"]
    assert len(data["changes"]) == 1
    assert len(data["unchanged"]) == 1_500
    read = Plan.from_dict(data)
    assert (read.hash, read.counts()) == (plan.hash, plan.counts())


def edit_group(group: str, edit: Callable[[dict[str, Any], dict[str, Any]], None]) -> dict[str, Any]:
    data = roundtrip(sample().to_dict())
    edit(data["unchanged"], data["unchanged"][group])
    return data


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda groups, g: g.update(count=g["count"] + 1), id="count"),
        pytest.param(lambda groups, g: g.update(count=1), id="count-down"),
        pytest.param(lambda groups, g: g.update(digest="0" * 64), id="digest"),
        pytest.param(lambda groups, g: groups.pop("tenancy/team"), id="removed"),
        pytest.param(lambda groups, g: groups.update({"tenancy/elsewhere": dict(g)}), id="added"),
        pytest.param(lambda groups, g: groups.update({"tenancy/elsewhere": groups.pop("tenancy/team")}), id="moved"),
    ],
)
def test_an_edited_group_of_unchanged_resources_is_refused(edit: Callable[..., None]) -> None:
    with pytest.raises(UserError, match="edited after it was made"):
        Plan.from_dict(edit_group("tenancy/team", edit))


@pytest.mark.parametrize("count", [0, -1, "2", 2.0, True, None])
def test_a_group_that_is_not_a_count_and_a_digest_is_not_a_plan(count: Any) -> None:
    data = edit_group("tenancy/team", lambda groups, g: g.update(count=count))
    with pytest.raises(UserError, match="not a usable plan"):
        Plan.from_dict(data)


def test_a_pending_change_cannot_pass_for_an_unchanged_one() -> None:
    plan = sample()
    update = next(c for c in plan.changes if c.action is Action.UPDATE)
    # dropped from the list and counted in its group, with the group's digest made as if it were unchanged
    lean = roundtrip(plan.to_dict())
    lean["changes"] = [c for c in lean["changes"] if c["key"] != update.key]
    as_unchanged = [c for c in plan.changes if c.plane == "tenancy" and c.action is not Action.DELETE]
    assert [c.key for c in as_unchanged] == ["tenancy/team/Thing/same", update.key, "tenancy/team/Thing/same-too"]
    lean["unchanged"]["tenancy/team"] = {"count": 3, "digest": group_digest(as_unchanged)}
    with pytest.raises(UserError, match="edited after it was made"):
        Plan.from_dict(lean)
    # relabelled as unchanged where it is listed with its bodies: in the full file...
    full = roundtrip(plan.to_dict(full=True))
    next(c for c in full["changes"] if c["key"] == update.key)["action"] = "noop"
    with pytest.raises(UserError, match="edited after it was made"):
        Plan.from_dict(full)
    # ... and in the lean one, where its group is already counted, so it could not stand beside it
    lean = roundtrip(plan.to_dict())
    next(c for c in lean["changes"] if c["key"] == update.key)["action"] = "noop"
    with pytest.raises(UserError, match="tenancy/team: unchanged resources both listed and counted"):
        Plan.from_dict(lean)


def test_a_lean_file_lists_an_unchanged_resource_only_with_its_bodies() -> None:
    plan = sample()
    lean, full = roundtrip(plan.to_dict()), roundtrip(plan.to_dict(full=True))
    listed = next(c for c in full["changes"] if c["key"] == "models/other/Thing/also-same")
    # listed in full, instead of counted: read as before, the same plan
    mixed = lean | {
        "changes": [*lean["changes"], listed],
        "unchanged": {"tenancy/team": lean["unchanged"]["tenancy/team"]},
    }
    assert Plan.from_dict(mixed).hash == plan.hash
    assert Plan.from_dict(mixed).counts() == plan.counts()
    # by identity and digest alone (what lean files held before): nothing to read it back from
    bare = {k: listed[k] for k in ("key", "plane", "kind", "scope", "name", "action")} | {"digest": "0" * 64}
    with pytest.raises(UserError, match="not a usable plan"):
        Plan.from_dict(mixed | {"changes": [*lean["changes"], bare]})


def test_plan_writes_lean_json_and_full_with_the_flag(shipyard: Run, repo: Path) -> None:
    assert shipyard("apply", repo=repo).code == 0
    lean_file, full_file = repo / "lean.json", repo / "full.json"
    lean = shipyard("plan", "--format", "json", "--out", str(lean_file), repo=repo)
    full = shipyard("plan", "--format", "json", "--full", "--out", str(full_file), repo=repo)
    assert (lean.code, full.code) == (0, 0)
    assert json.loads(lean.out) == json.loads(lean_file.read_text())
    assert json.loads(full.out) == json.loads(full_file.read_text())
    lean_plan, full_plan = json.loads(lean.out)["plan"], json.loads(full.out)["plan"]
    assert lean_plan["changes"] == []
    assert sum(g["count"] for g in lean_plan["unchanged"].values()) == lean_plan["summary"]["noop"] > 0
    assert lean_plan["summary"] == full_plan["summary"]
    # --full is the format plan files had before: every change with its diffs and bodies, and no groups
    assert "unchanged" not in full_plan
    assert len(full_plan["changes"]) == full_plan["summary"]["noop"]
    assert all(c.keys() >= {"source", "diffs", "desired", "observed"} for c in full_plan["changes"])
    assert Plan.from_dict(lean_plan).hash == Plan.from_dict(full_plan).hash == lean_plan["hash"]


def edit_unchanged(plan: dict[str, Any]) -> None:
    """Move one unchanged Resource out of what the file says about the fraud team's tenancy."""
    if "unchanged" in plan:
        plan["unchanged"]["tenancy/fraud"]["count"] -= 1
    else:
        next(c for c in plan["changes"] if c["action"] == "noop").update(key="tenancy/fraud/Namespace/elsewhere")


@pytest.mark.parametrize("flags", [(), ("--full",)], ids=["lean", "full"])
def test_apply_a_reviewed_plan_file_with_unchanged_resources(shipyard: Run, repo: Path, flags: tuple[str, ...]) -> None:
    assert shipyard("apply", repo=repo).code == 0
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud", gpu=7)})
    plan_file = repo / "plan.json"
    assert shipyard("plan", "--out", str(plan_file), *flags, repo=repo).code == 0
    written = json.loads(plan_file.read_text())["plan"]
    assert [c["action"] for c in written["changes"] if c["action"] != "noop"] == ["update"]
    listed = sum(c["action"] == "noop" for c in written["changes"])
    counted = sum(g["count"] for g in written.get("unchanged", {}).values())
    assert (listed, counted) == ((11, 0) if flags else (0, 11))

    tampered = json.loads(plan_file.read_text())
    edit_unchanged(tampered["plan"])
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
