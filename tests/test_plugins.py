"""Plugin discovery: entry points, attribution, and start-up failures that name the plugin."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result
from shipyard.engine.registry import discover
from shipyard.sdk import Kind, SpecModel, hookimpl
from shipyard.sdk.errors import PluginError


def test_builtin_and_third_party_plugins_are_found_by_entry_point() -> None:
    registry = discover()
    by_name = {p.name: p for p in registry.plugins}
    assert by_name["tenancy"].distribution == "shipyard"
    assert by_name["tenancy"].planes == ("tenancy",)
    assert by_name["tenancy"].kinds == ("Team", "Environment")
    vectordb = by_name["vectordb"]
    assert (vectordb.distribution, vectordb.version, vectordb.kinds) == (
        "shipyard-example-vectordb",
        "0.3.0",
        ("VectorIndex",),
    )
    assert vectordb.policies == ("VDB-IDX-001",)
    assert set(registry.kinds) >= {"Team", "VectorIndex"}


def plugin(**hooks: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(**hooks)


def test_a_misspelled_hook_fails_at_start_up_naming_the_plugin() -> None:
    def shipyard_kind() -> list[Kind]:
        return []

    broken = plugin(shipyard_kind=shipyard_kind)
    with pytest.raises(PluginError) as caught:
        discover(extra=[("acme-serving", broken)])
    assert "plugin 'acme-serving'" in caught.value.message
    assert "unknown hook 'shipyard_kind'" in caught.value.message
    assert caught.value.hint == "did you mean 'shipyard_kinds'?"


def test_marked_hooks_with_wrong_arguments_are_refused() -> None:
    class Bad:
        @hookimpl
        def shipyard_kinds(self, repo: Path) -> list[Kind]:
            return []

    with pytest.raises(PluginError, match="plugin 'bad' cannot be registered"):
        discover(extra=[("bad", Bad())])


def test_a_kind_defined_twice_is_refused() -> None:
    class Spec(SpecModel):
        size: int

    clash = plugin(shipyard_kinds=lambda: [Kind("Team", Spec, globs=("x/*.yaml",))])
    with pytest.raises(PluginError, match="kind 'Team' is defined twice"):
        discover(extra=[("clash", clash)])


def test_shipyard_plugins_lists_them(
    shipyard: Callable[..., Result], repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one row per plugin
    result = shipyard("plugins", repo=repo)
    assert result.code == 0
    lines = {line.split()[0]: line.split() for line in result.out.splitlines()[1:]}
    assert lines["tenancy"][:6] == ["tenancy", "shipyard", "0.1.0", "Team,", "Environment", "tenancy"]
    assert lines["vectordb"][:5] == ["vectordb", "shipyard-example-vectordb", "0.3.0", "VectorIndex", "-"]


def test_shipyard_plugins_json(shipyard: Callable[..., Result], repo: Path) -> None:
    import json

    rows = json.loads(shipyard("plugins", "--format", "json", repo=repo).out)
    assert {r["name"]: r["distribution"] for r in rows} == {
        "features": "shipyard",
        "infra": "shipyard",
        "pipelines": "shipyard",
        "models": "shipyard",
        "tenancy": "shipyard",
        "vectordb": "shipyard-example-vectordb",
    }
