"""Guardrails on Team specs, and on what a team's specs may name of another team's."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from shipyard.sdk.kinds import Spec
from shipyard.sdk.model import Diagnostic, FieldPath, dotted
from shipyard.sdk.planes import Policy, PolicyContext
from shipyard.sdk.platform import TEAM, TeamSpec, cross_team, exports, namespace_of

RESERVED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
RESERVED_PREFIXES = ("kube-", "shipyard-", "kubeflow", "kserve", "cert-manager")


def reserved_namespace(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for team in ctx.specs.of_kind(TEAM.name):
        namespace = namespace_of(team)
        if namespace in RESERVED_NAMESPACES or namespace.startswith(RESERVED_PREFIXES):
            yield team.diagnostic(
                ("spec", "namespace") if team.spec.namespace else ("metadata", "name"),
                got=f"namespace '{namespace}'",
                expected="a namespace not reserved for Kubernetes or the platform",
                hint="set spec.namespace to a team-specific name",
            )


def unique_namespace(ctx: PolicyContext) -> Iterator[Diagnostic]:
    """No team takes a namespace another team has, or another team's name (the namespace it gets by default)."""
    teams = ctx.specs.of_kind(TEAM.name)
    owners: dict[str, Spec] = {team.name: team for team in teams}  # a team's name is its own
    for team in teams:
        owners.setdefault(namespace_of(team), team)
    for team in teams:
        namespace = namespace_of(team)
        owner = owners[namespace]
        if owner is not team:
            why = "its namespace" if namespace_of(owner) == namespace else "its name"
            yield cross_team(
                ctx.specs,
                team,
                ("spec", "namespace"),
                value=namespace,
                what="namespace",
                owner=owner.name,
                why=f"{why}, {owner.source.file}",
                export=None,
                hint="tenancy isolation is per namespace; set spec.namespace to a name no other team has",
            )


#: In a platform spec (a FeatureStore's offline uri, an Environment's pipeline root), what each team's own folder is.
TEAM_PLACEHOLDER = "{team}"


def _strings(value: Any, path: FieldPath) -> Iterator[tuple[FieldPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _team_locations(ctx: PolicyContext) -> dict[str, str]:
    """Each per-team location the platform's specs declare, by what comes before ``{team}``: where it is declared."""
    found: dict[str, str] = {}
    for spec in ctx.specs:
        if spec.team is None and spec.kind != TEAM.name and isinstance(spec.spec, BaseModel):
            for path, text in _strings(spec.spec.model_dump(by_alias=True), ("spec",)):
                head = text.partition(TEAM_PLACEHOLDER)[0]
                if TEAM_PLACEHOLDER in text and head:
                    found.setdefault(head, f"{spec.source.file}: {dotted(path)}")
    return found


def _exported(inside: str, paths: list[str]) -> bool:
    return bool(inside) and any(inside == p.rstrip("/") or inside.startswith(p.rstrip("/") + "/") for p in paths)


def own_data(ctx: PolicyContext) -> Iterator[Diagnostic]:
    """A team's specs name no other team's folder of a per-team location (offline data, pipeline root, Feast
    registry), but what that team exports (``spec.exports.dataPaths``)."""
    locations = _team_locations(ctx)
    teams = {team.name for team in ctx.specs.of_kind(TEAM.name)}
    if not locations:
        return
    for spec in ctx.specs:
        if spec.team is None or not isinstance(spec.spec, BaseModel):
            continue
        for path, text in _strings(spec.spec.model_dump(by_alias=True), ("spec",)):
            for head, declared in locations.items():
                if not text.startswith(head):
                    continue
                owner, _, inside = posixpath.normpath(text[len(head) :]).partition("/")
                if owner not in teams or owner == spec.team:
                    continue
                if not _exported(inside, exports(ctx.specs, owner).data_paths):
                    yield cross_team(
                        ctx.specs,
                        spec,
                        path,
                        value=text,
                        what="data",
                        owner=owner,
                        why=f"its folder {head}{owner}/ of {declared}",
                        export="dataPaths",
                        entry=inside or ".",
                    )
                    break


def gpu_needs_budget(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for team in ctx.specs.of_kind(TEAM.name):
        spec: TeamSpec = team.spec
        if spec.quota.gpu > 0 and spec.budget.monthly_usd == 0:
            yield team.diagnostic(
                ("spec", "budget", "monthlyUsd"),
                got=f"a budget of 0 with a quota of {spec.quota.gpu} GPUs",
                expected="a budget that pays for the GPU quota",
                hint="GPU hours are the largest cost on the platform",
            )


POLICIES = [
    Policy(
        "SY-TEN-001",
        "Teams never take a system or platform namespace.",
        reserved_namespace,
        target="spec:Team",
        references=("kyverno:disallow-default-namespace",),
        hint="set spec.namespace to a team-specific name",
    ),
    Policy(
        "SY-TEN-002",
        "Each team has a namespace of its own: neither another team's nor another team's name.",
        unique_namespace,
        target="spec:Team",
        hint="tenancy isolation is per namespace, and no team shares its own; pick another",
    ),
    Policy(
        "SY-TEN-003",
        "A GPU quota comes with a budget.",
        gpu_needs_budget,
        mandatory=False,
        target="spec:Team",
        hint="set spec.budget.monthlyUsd",
    ),
    Policy(
        "SY-ISO-003",
        "A team's specs name no other team's data folder, but what that team exports.",
        own_data,
        target="spec",
        hint="read the team's own data, or have the other team add the path to spec.exports.dataPaths",
    ),
]
