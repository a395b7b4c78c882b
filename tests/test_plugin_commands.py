"""CLI verbs come from plugins through the shipyard_commands hook: a third-party one, and the planes' own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import pytest

from conftest import Result, commit, write
from shipyard.cli.app import Session, cli
from shipyard.engine.registry import discover
from shipyard.sdk import PluginError, hookimpl

INDEX = """apiVersion: shipyard.dev/v1alpha1
kind: VectorIndex
metadata: {name: products, team: search}
spec: {dimensions: 768, embeddingModel: search-embedder, replicas: 2}
"""


def test_a_third_party_plugin_adds_a_verb_that_reads_the_repo(repo: Path, shipyard: Callable[..., Result]) -> None:
    write(repo, {"vector-indexes/search/products.yaml": INDEX})
    commit(repo, "an index")

    listed = shipyard("indexes", repo=repo)
    assert listed.code == 0, listed.err
    assert listed.out == "search/products: 768 dimensions, cosine, 2 replica(s)\n"
    assert shipyard("indexes", "--team", "fraud", repo=repo).out == "no vector indexes\n"
    assert "indexes" in shipyard("--help").out  # listed beside the built-in verbs
    assert "List the vector indexes" in shipyard("indexes", "--help").out


def test_a_plugin_verb_reports_bad_specs_like_any_command(repo: Path, shipyard: Callable[..., Result]) -> None:
    write(repo, {"vector-indexes/search/products.yaml": INDEX.replace("768", "-1")})

    result = shipyard("indexes", repo=repo)
    assert result.code == 1
    assert "vector-indexes/search/products.yaml:4:" in result.err
    assert "Traceback" not in result.err


def test_the_planes_verbs_come_through_the_same_hook() -> None:
    verbs = {info.name: info.commands for info in discover().plugins}
    assert verbs["features"] == ("seed", "features")
    assert verbs["pipelines"] == ("compile",)
    assert verbs["models"] == ("promote", "rollback")
    assert verbs["vectordb"] == ("indexes",)


def test_a_plugin_may_not_take_a_built_in_verb() -> None:
    class Squatter:
        @hookimpl
        def shipyard_commands(self) -> list[click.Command]:
            return [click.Command("plan", callback=lambda: None)]

    session = Session()
    session._registry = discover([("squatter", Squatter())])
    with pytest.raises(PluginError, match="'plan', which is Shipyard's own"):
        cli.list_commands(click.Context(cli, obj=session))
