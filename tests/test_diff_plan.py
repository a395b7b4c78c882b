"""The generic diff and the Plan: pure, ordered, hashed, serialisable."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shipyard.core.diff import diff_bodies
from shipyard.core.plan import Plan, change_digest, make_plan
from shipyard.sdk.errors import InternalError, UserError
from shipyard.sdk.model import Action, FieldOp, Resource

DIFFS: list[tuple[str, Any, Any, list[tuple[str, FieldOp]]]] = [
    ("equal", {"a": 1}, {"a": 1}, []),
    ("int and float are one quantity", {"a": 2}, {"a": 2.0}, []),
    ("bool is not int", {"a": True}, {"a": 1}, [("a", FieldOp.CHANGE)]),
    ("added key", {}, {"a": {"b": 1}}, [("a", FieldOp.ADD)]),
    ("removed key", {"a": 1, "b": 2}, {"a": 1}, [("b", FieldOp.REMOVE)]),
    ("nested change", {"s": {"hard": {"cpu": "8"}}}, {"s": {"hard": {"cpu": "16"}}}, [("s.hard.cpu", FieldOp.CHANGE)]),
    ("dotted key", {"h": {"a.b/c": "1"}}, {"h": {"a.b/c": "2"}}, [('h["a.b/c"]', FieldOp.CHANGE)]),
    ("list grows", {"l": [1]}, {"l": [1, 2]}, [("l[1]", FieldOp.ADD)]),
    ("list shrinks", {"l": [1, 2]}, {"l": [1]}, [("l[1]", FieldOp.REMOVE)]),
    ("list item changes", {"l": [{"n": 1}]}, {"l": [{"n": 2}]}, [("l[0].n", FieldOp.CHANGE)]),
    ("type changes", {"a": [1]}, {"a": {"x": 1}}, [("a", FieldOp.CHANGE)]),
]


@pytest.mark.parametrize(("case", "before", "after", "expected"), DIFFS, ids=[d[0] for d in DIFFS])
def test_diff_bodies(case: str, before: Any, after: Any, expected: list[tuple[str, FieldOp]]) -> None:
    assert [(d.dotted, d.op) for d in diff_bodies(before, after)] == expected


def test_ignore_rules_hide_server_set_fields_with_wildcards() -> None:
    before = {"metadata": {"uid": "1", "name": "a"}, "status": {"ready": True}, "spec": [{"id": 1}, {"id": 2}]}
    after = {"metadata": {"uid": "2", "name": "b"}, "spec": [{"id": 3}, {"id": 4}]}
    ignore = [("metadata", "uid"), ("status",), ("spec", "*", "id")]
    assert [d.dotted for d in diff_bodies(before, after, ignore)] == ["metadata.name"]


def r(name: str, body: dict[str, Any], plane: str = "tenancy", payload: dict[str, Any] | None = None) -> Resource:
    return Resource(plane, "Thing", "team", name, body, payload=payload or {})


RULES = {"infra": (10, {}), "tenancy": (20, {"Thing": [("status",)]}), "models": (50, {})}


def test_keys_are_derived_from_the_structured_identity() -> None:
    resource = Resource("models", "ModelAlias", "fraud", "fraud-scorer", {})
    assert resource.key == "models/fraud/ModelAlias/fraud-scorer"
    [change] = make_plan("local", [resource], [], RULES).changes
    assert (change.plane, change.kind, change.scope, change.name) == ("models", "ModelAlias", "fraud", "fraud-scorer")
    assert change.key == resource.key


def test_plan_actions_and_order() -> None:
    desired = [
        r("a", {"v": 1}, "models"),
        r("ns", {"v": 1}),
        r("quota", {"v": 2}),
        r("vpc", {"v": 1}, "infra"),
    ]
    observed = [
        r("quota", {"v": 1, "status": "x"}),
        r("ns", {"v": 1, "status": "y"}),
        r("old", {"v": 1}, "infra"),
        r("old", {"v": 1}, "models"),
    ]
    plan = make_plan("local", desired, observed, RULES)
    assert [(c.key, c.action) for c in plan.changes] == [
        ("infra/team/Thing/vpc", Action.CREATE),
        ("tenancy/team/Thing/ns", Action.NOOP),  # status is server-set: ignored
        ("tenancy/team/Thing/quota", Action.UPDATE),
        ("models/team/Thing/a", Action.CREATE),
        ("models/team/Thing/old", Action.DELETE),  # deletes last, dependants first
        ("infra/team/Thing/old", Action.DELETE),
    ]
    assert [c.key for c in plan.pending] == [
        "infra/team/Thing/vpc",
        "tenancy/team/Thing/quota",
        "models/team/Thing/a",
        "models/team/Thing/old",
        "infra/team/Thing/old",
    ]
    assert plan.counts()[Action.NOOP] == 1


def test_plan_hash_is_stable_and_sensitive() -> None:
    one = make_plan("local", [r("a", {"v": 1})], [], RULES)
    again = make_plan("local", [r("a", {"v": 1})], [], RULES)
    other = make_plan("local", [r("a", {"v": 2})], [], RULES)
    elsewhere = make_plan("dev", [r("a", {"v": 1})], [], RULES)
    assert one.hash == again.hash
    assert len({one.hash, other.hash, elsewhere.hash}) == 3
    # server-set fields in what was observed do not make a plan stale
    seen1 = make_plan("local", [r("a", {"v": 1})], [r("a", {"v": 1, "status": "a"})], RULES)
    seen2 = make_plan("local", [r("a", {"v": 1})], [r("a", {"v": 1, "status": "b"})], RULES)
    assert seen1.hash == seen2.hash
    assert change_digest(seen1.changes[0]) == change_digest(seen2.changes[0])


def test_the_hash_covers_the_pinned_facts_and_the_payload_but_the_diff_does_not() -> None:
    base = make_plan("local", [r("a", {"v": 1})], [r("a", {"v": 1})], RULES, facts={"models": {"latest": 1}})
    moved = make_plan("local", [r("a", {"v": 1})], [r("a", {"v": 1})], RULES, facts={"models": {"latest": 2}})
    assert base.hash != moved.hash
    assert base.to_dict()["facts"] == {"models": {"latest": 1}}

    plain = make_plan("local", [r("a", {"v": 1})], [], RULES)
    carried = make_plan("local", [r("a", {"v": 1}, payload={"compiled": "x"})], [], RULES)
    recompiled = make_plan("local", [r("a", {"v": 1}, payload={"compiled": "y"})], [], RULES)
    assert len({plain.hash, carried.hash, recompiled.hash}) == 3
    # a payload is not what a reviewer reads: it never makes a diff
    same = make_plan("local", [r("a", {"v": 1}, payload={"compiled": "y"})], [r("a", {"v": 1})], RULES)
    assert [c.action for c in same.changes] == [Action.NOOP]


def test_plan_round_trips_through_json_and_detects_tampering() -> None:
    plan = make_plan(
        "local",
        [r("a", {"v": 2}, payload={"compiled": {"ir": 1}})],
        [r("a", {"v": 1}), r("b", {})],
        RULES,
        facts={"models": {"latest": 3}},
    )
    data = json.loads(json.dumps(plan.to_dict()))
    assert Plan.from_dict(data) == plan
    assert Plan.from_dict(data).hash == plan.hash
    restored = Plan.from_dict(data).changes[0].desired
    assert restored is not None
    assert restored.payload == {"compiled": {"ir": 1}}
    edited_facts = json.loads(json.dumps(data))
    edited_facts["facts"]["models"]["latest"] = 4
    with pytest.raises(UserError, match="edited after it was made"):
        Plan.from_dict(edited_facts)
    data["changes"][0]["desired"]["body"]["v"] = 3
    with pytest.raises(UserError, match="edited after it was made"):
        Plan.from_dict(data)
    with pytest.raises(UserError, match="not a Shipyard plan"):
        Plan.from_dict({"format": "terraform"})


def test_duplicate_desired_keys_are_a_plane_bug() -> None:
    with pytest.raises(InternalError, match="share the key"):
        make_plan("local", [r("a", {}), r("a", {})], [], RULES)
