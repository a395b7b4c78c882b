"""An example third-party plugin: a ``VectorIndex`` kind for a team's vector database.

It shows the smallest useful plugin: a typed spec, where its documents live, a policy,
and a CLI verb of its own (``shipyard indexes``). Shipyard's tests install it and discover
it by its entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import click
from pydantic import Field

from shipyard.sdk import Diagnostic, Kind, Policy, PolicyContext, SpecModel, hookimpl
from shipyard.sdk.commands import Session


class VectorIndexSpec(SpecModel):
    dimensions: int = Field(gt=0, le=8192, description="Embedding width.")
    metric: Literal["cosine", "dot", "l2"] = "cosine"
    embedding_model: str = Field(description="Registered model that produces the embeddings.")
    replicas: int = Field(default=1, ge=1, le=16)


def _replicated_in_prod(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for index in ctx.specs.of_kind("VectorIndex"):
        if index.labels.get("tier") == "prod" and index.spec.replicas < 2:
            yield index.diagnostic(
                ("spec", "replicas"),
                got=f"{index.spec.replicas} replica",
                expected="at least 2 replicas for a tier=prod index",
            )


@hookimpl
def shipyard_kinds() -> list[Kind]:
    return [
        Kind(
            "VectorIndex",
            VectorIndexSpec,
            globs=("vector-indexes/**/*.yaml",),
            description="A vector index served to a team's retrieval models.",
        )
    ]


@hookimpl
def shipyard_policies() -> list[Policy]:
    return [Policy("VDB-IDX-001", "Production indexes are replicated.", _replicated_in_prod)]


@click.command("indexes")
@click.option("--team", help="Only this team's indexes.")
@click.pass_obj
def list_indexes(session: Session, team: str | None) -> None:
    """List the vector indexes the repo declares: team, name, dimensions, metric, replicas."""
    found = [i for i in session.specs().of_kind("VectorIndex") if team is None or i.team == team]
    for index in found:
        spec = index.spec
        click.echo(
            f"{index.team}/{index.name}: {spec.dimensions} dimensions, {spec.metric}, {spec.replicas} replica(s)"
        )
    if not found:
        click.echo("no vector indexes")


@hookimpl
def shipyard_commands() -> list[click.Command]:
    return [list_indexes]
