"""Incremental plans: a unit whose inputs did not change is reused, and a changed input is never served from the cache.

The proof is comparative: every plan made with the cache is compared with the same plan made
with none (hash, changes, findings), after edits that touch each kind of input a unit reads.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import commit, edit, example_repo, whole_template
from shipyard.engine import planner
from shipyard.engine.evaluation import CACHE_DIR, evaluate
from shipyard.engine.registry import Registry
from shipyard.engine.targets import parse_target
from shipyard.sdk import Cache, DesiredContext, Diagnostic, InternalError, Plane, Resource, SpecSet, Unit
from shipyard.sdk.planes import STATE_DIR

BASE = parse_target("base:HEAD~1")


def cache_dir(root: Path) -> Path:
    return root / STATE_DIR / CACHE_DIR


def plan(registry: Registry, root: Path) -> planner.PlanResult:
    return planner.plan(registry, root, BASE)


def summary(result: planner.PlanResult) -> tuple[str, list[str], list[str]]:
    changes = [f"{c.action.value} {c.key}" for c in result.plan.pending]
    return result.plan.hash, changes, sorted(d.headline for d in result.findings)


def computed(result: planner.PlanResult, side: str = "head") -> dict[str, tuple[str, ...]]:
    return {plane: scopes for plane, scopes in result.evaluations[side].computed.items() if scopes}


def cold(registry: Registry, root: Path) -> planner.PlanResult:
    """The same plan with nothing cached: what the cached one must equal."""
    shutil.rmtree(cache_dir(root), ignore_errors=True)
    return plan(registry, root)


def two_commits(root: Path) -> Path:
    commit(root, "the rest of the template")
    edit(root, "models/fraud/fraud-scorer.yaml", "min: 2", "min: 3")
    commit(root, "one field")
    return root


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example teams with the infra program, committed twice so that base:HEAD~1 exists."""
    return two_commits(whole_template(tmp_path_factory.mktemp("incremental")))


@pytest.fixture(scope="module")
def teams(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example teams alone (no stacks: planned in seconds), committed twice."""
    root = example_repo(tmp_path_factory.mktemp("teams"))
    (root / "README.md").write_text("teams\n")
    return two_commits(root)


def test_an_unchanged_unit_is_computed_once_and_a_warm_plan_reuses_everything(
    registry: Registry, template: Path
) -> None:
    first = cold(registry, template)
    assert [f"{c.action.value} {c.key}" for c in first.plan.pending] == [
        "update models/fraud/InferenceService/fraud-scorer"
    ]
    # Cold, the base revision reuses every unit the change did not touch: only the fraud team's models.
    assert computed(first, "base") == {"models": ("fraud",)}
    assert set(computed(first)) == {"infra", "features", "pipelines", "models"}

    warm = plan(registry, template)
    assert summary(warm) == summary(first)
    assert computed(warm) == {}
    assert computed(warm, "base") == {}
    assert warm.evaluations["head"].reused["infra"] == ("dev", "prod", "staging")

    # Deleting or damaging the cache changes no plan: an entry that does not read back is computed again.
    for entry in sorted(cache_dir(template).rglob("*.json"))[::2]:
        entry.write_text('{"resources": [')
    assert summary(plan(registry, template)) == summary(first)


@pytest.mark.parametrize(
    ("path", "old", "new", "recomputed"),
    [
        # A deployment's field: only its team's models.
        ("models/fraud/fraud-scorer.yaml", "max: 4", "max: 5", {"models": ("fraud",)}),
        # Team code (pipeline source and Feast definitions): only that plane's unit of the team.
        (
            "pipelines/fraud/train/pipeline.py",
            "training pipeline:",
            "nightly training pipeline:",
            {"pipelines": ("fraud",)},
        ),
        ("features/fraud/features.py", "ttl=timedelta(days=2)", "ttl=timedelta(days=3)", {"features": ("fraud",)}),
        # A Team spec: its features (the team list) and models (the namespace) units.
        (
            "platform/teams/fraud.yaml",
            "monthlyUsd: 18000",
            "monthlyUsd: 19000",
            {"features": ("fraud",), "models": ("fraud",)},
        ),
    ],
    ids=["deployment", "pipeline-code", "feast-definitions", "team-spec"],
)
def test_a_changed_input_is_recomputed_and_the_plan_equals_one_made_without_a_cache(
    registry: Registry, tmp_path: Path, teams: Path, path: str, old: str, new: str, recomputed: object
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(teams, root, symlinks=True)
    plan(registry, root)  # warm: the cache holds every unit of both revisions
    edit(root, path, old, new)
    commit(root, f"edit {path}")

    warm = plan(registry, root)
    assert computed(warm) == recomputed
    assert computed(warm, "base") == {}  # the base revision is the commit the warm plan saw as head
    assert summary(warm) == summary(cold(registry, root))


@pytest.mark.parametrize(
    ("path", "old", "new", "recomputed"),
    [
        # A Team spec: every stack (IAM, tenancy, budgets) too.
        (
            "platform/teams/fraud.yaml",
            "monthlyUsd: 18000",
            "monthlyUsd: 19000",
            {"infra": ("dev", "prod", "staging"), "features": ("fraud",), "models": ("fraud",)},
        ),
        # A stack's file: that stack, and every unit that checks GPU pools against the stacks.
        ("Pulumi.dev.yaml", "max: 6", "max: 7", {"infra": ("dev",), "pipelines": ("fraud",), "models": ("fraud",)}),
    ],
    ids=["team-spec", "stack-file"],
)
def test_infra_is_evaluated_again_only_when_what_its_program_reads_changed(
    registry: Registry, tmp_path: Path, template: Path, path: str, old: str, new: str, recomputed: object
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(template, root, symlinks=True)
    plan(registry, root)
    edit(root, path, old, new)
    commit(root, f"edit {path}")
    warm = plan(registry, root)
    assert computed(warm) == recomputed
    assert summary(warm) == summary(cold(registry, root))


def test_what_a_unit_computes_does_not_depend_on_where_the_repository_is(registry: Registry, tmp_path: Path) -> None:
    """A base revision is computed in a temporary tree and reused at head: no unit may read its own location."""
    first = example_repo(tmp_path / "a")
    second = tmp_path / "b" / "elsewhere"
    shutil.copytree(first, second, symlinks=True)
    specs = [planner.validate(registry, root).specs for root in (first, second)]
    resources = [
        evaluate(registry.planes, planner.contexts(registry, root, found, "local", None), Cache(None, "v"), check=True)
        for root, found in zip((first, second), specs, strict=True)
    ]
    as_json = [json.dumps([r.to_dict() for r in e.resources], sort_keys=True) for e in resources]
    assert as_json[0] == as_json[1]
    assert str(first) not in as_json[0]
    assert [d.headline for d in resources[0].findings] == [d.headline for d in resources[1].findings]


# -- the cache itself ----------------------------------------------------------------------------------


def test_a_digest_covers_names_bytes_new_files_and_the_code_version(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "a.py").write_text("x = 1\n")
    cache = Cache(None, "v1")
    first = cache.digest(tmp_path, ["team", "missing.yaml"])
    assert cache.digest(tmp_path, ["missing.yaml", "team"]) == first  # order of paths does not matter
    (tmp_path / "team" / "__pycache__").mkdir()
    (tmp_path / "team" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert cache.digest(tmp_path, ["team", "missing.yaml"]) == first  # what Python writes is no input
    assert Cache(None, "v2").digest(tmp_path, ["team", "missing.yaml"]) != first
    assert cache.digest(tmp_path, ["team", "missing.yaml"], extra={"facts": 1}) != first
    (tmp_path / "team" / "b.py").write_text("")
    second = cache.digest(tmp_path, ["team", "missing.yaml"])
    assert second != first
    (tmp_path / "missing.yaml").write_text("")
    assert cache.digest(tmp_path, ["team", "missing.yaml"]) != second
    (tmp_path / "team" / "a.py").write_text("x = 2\n")  # same size, new bytes
    assert cache.digest(tmp_path, ["team", "missing.yaml"]) not in {first, second}


def test_values_are_kept_across_processes_and_a_foreign_file_is_a_miss(tmp_path: Path) -> None:
    Cache(tmp_path, "v").put("desired/x", "d1", {"resources": []})
    assert Cache(tmp_path, "v").get("desired/x", "d1") == {"resources": []}
    assert Cache(tmp_path, "v").get("desired/x", "d2") is None
    (tmp_path / "desired" / "x" / "d3.json").write_text("not json")
    assert Cache(tmp_path, "v").get("desired/x", "d3") is None
    assert not list((tmp_path / "desired" / "x").glob(".*.tmp"))  # written whole: no temporary left


class _Careless(Plane):
    """A plane that ignores ``ctx.scopes``: the engine must refuse its extra Resources, not cache them."""

    name = "careless"
    order = 5

    def units(self, ctx: DesiredContext) -> list[Unit]:
        return [Unit("a"), Unit("b")]

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        return [Resource(self.name, "Thing", scope, "t", {}) for scope in ("a", "b")]


def test_a_plane_that_answers_for_scopes_it_was_not_asked_is_a_plane_bug(tmp_path: Path) -> None:
    cache = Cache(None, "v")
    plane = _Careless()
    ctxs: Mapping[str, DesiredContext] = {plane.name: DesiredContext(tmp_path, SpecSet(()), "local", live=False)}
    assert len(evaluate([plane], ctxs, cache, check=False).resources) == 2  # both asked: fine
    only_a = Cache(None, "v")
    only_a.put("desired/careless", _digests(only_a, plane, ctxs)[0], {"resources": []})  # b alone is asked
    with pytest.raises(InternalError, match="careless plane gave careless/a/Thing/t"):
        evaluate([plane], ctxs, only_a, check=False)


def _digests(cache: Cache, plane: Plane, ctxs: Mapping[str, DesiredContext]) -> list[str]:
    from shipyard.engine.evaluation import _digest

    return [_digest(cache, plane, ctxs[plane.name], unit) for unit in plane.units(ctxs[plane.name]) or ()]


class _Clocked(Plane):
    """A unit whose check reads something besides its inputs (as a freshness check reads the clock)."""

    name = "clocked"
    order = 5

    def __init__(self) -> None:
        self.now = "before"
        self.checked = 0

    def units(self, ctx: DesiredContext) -> list[Unit]:
        return [Unit("a", volatile=True), Unit("b")]

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        return [Resource(self.name, "Thing", scope, "t", {}) for scope in ("a", "b") if ctx.wants(scope)]

    def check(self, ctx: DesiredContext, resources: Sequence[Resource]) -> Iterable[Diagnostic]:
        self.checked += 1
        return [Diagnostic("clock", f"{r.scope} at {self.now}") for r in resources]


def test_a_volatile_units_check_runs_on_every_plan_and_its_resources_are_reused(tmp_path: Path) -> None:
    plane = _Clocked()
    ctxs: Mapping[str, DesiredContext] = {plane.name: DesiredContext(tmp_path, SpecSet(()), "local", live=True)}
    first = evaluate([plane], ctxs, Cache(tmp_path / "cache", "v"), check=True)
    assert sorted(d.message for d in first.findings) == ["a at before", "b at before"]
    plane.now, plane.checked = "after", 0
    again = evaluate([plane], ctxs, Cache(tmp_path / "cache", "v"), check=True)  # a new process: from disk
    assert again.computed == {"clocked": ()}
    assert sorted(d.message for d in again.findings) == ["a at after", "b at before"]
    assert plane.checked == 1


def test_a_freshness_expectation_is_judged_at_the_time_given_and_makes_a_live_unit_volatile(
    registry: Registry, tmp_path: Path
) -> None:
    import pandas as pd

    from shipyard.planes.features.checks import validate

    frame = pd.DataFrame({"ts": pd.to_datetime(["2026-12-01T00:00:00Z", "2026-12-01T10:00:00Z"])})
    fresh = [{"expect": "fresh", "column": "ts", "maxAgeHours": 48}]
    assert validate(frame, fresh, now=datetime(2026, 12, 3, 9, tzinfo=UTC)) == []
    (stale,) = validate(frame, fresh, now=datetime(2026, 12, 3, 11, tzinfo=UTC))
    assert (stale["expect"], stale["observed"]) == ("fresh", "2026-12-01T10:00:00+00:00")

    root = example_repo(tmp_path)
    specs = planner.validate(registry, root).specs
    features = registry.plane("features")
    live = features.units(DesiredContext(root, specs, "local", live=True))
    from_git = features.units(DesiredContext(root, specs, "local", live=False))
    assert [(u.scope, u.volatile) for u in live or ()] == [("fraud", True)]  # its checks expect fresh data
    assert [(u.scope, u.volatile) for u in from_git or ()] == [("fraud", False)]  # no data read: nothing to judge
