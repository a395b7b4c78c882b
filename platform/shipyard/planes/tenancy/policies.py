"""Guardrails on Team specs."""

from __future__ import annotations

from collections.abc import Iterator

from shipyard.sdk.model import Diagnostic
from shipyard.sdk.planes import Policy, PolicyContext
from shipyard.sdk.platform import TEAM, TeamSpec, namespace_of

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
    owners: dict[str, str] = {}
    for team in ctx.specs.of_kind(TEAM.name):
        namespace = namespace_of(team)
        if namespace in owners:
            yield team.diagnostic(
                ("spec", "namespace"),
                got=f"namespace '{namespace}', already used by team '{owners[namespace]}'",
                expected="one namespace per team",
                hint="tenancy isolation is per namespace; pick another",
            )
        owners.setdefault(namespace, team.name)


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
        "Each team has a namespace of its own.",
        unique_namespace,
        target="spec:Team",
        hint="tenancy isolation is per namespace; pick another",
    ),
    Policy(
        "SY-TEN-003",
        "A GPU quota comes with a budget.",
        gpu_needs_budget,
        mandatory=False,
        target="spec:Team",
        hint="set spec.budget.monthlyUsd",
    ),
]
