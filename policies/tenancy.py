"""Rules on what the tenancy plane renders for each team (``platform/teams/*.yaml``): its namespace and the
quota, limits, network policies and role bindings in it.

The built-in Team rules (SY-TEN-001..003, ``platform/shipyard/planes/tenancy/policies.py``) read the
specs; these read the rendered objects, so a change to the renderer that drops a guardrail stops the
plan. A finding points at the Team spec and names the Resource as its subject.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from shipyard.sdk import Diagnostic, PolicyContext, rule
from shipyard.sdk.kubernetes import GPU_RESOURCE
from shipyard.sdk.model import FieldPath, Resource

PLANE = "tenancy"
GPU_QUOTA = f"requests.{GPU_RESOURCE}"
ENFORCE = "pod-security.kubernetes.io/enforce"
ADMIN_ROLES = frozenset({"cluster-admin"})


def objects(ctx: PolicyContext, kind: str) -> list[Resource]:
    return [r for r in ctx.resources or () if r.plane == PLANE and r.body.get("kind") == kind]


def namespaces(ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    for resource in objects(ctx, "Namespace"):
        yield resource, str(resource.body.get("metadata", {}).get("name", resource.name))


def by_namespace(ctx: PolicyContext, kind: str) -> dict[str, list[Mapping[str, Any]]]:
    """The bodies of ``kind`` per namespace: grouped once, so N teams cost N, not N²."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for resource in objects(ctx, kind):
        grouped.setdefault(str(resource.body.get("metadata", {}).get("namespace")), []).append(resource.body)
    return grouped


def on_team(ctx: PolicyContext, resource: Resource, path: FieldPath, *, got: str, expected: str) -> Diagnostic:
    """A finding at the Team spec field ``resource`` was rendered from."""
    team = ctx.specs.named("Team", resource.scope)
    if team is None:
        found = Diagnostic.mismatch("policy", got=got, expected=expected, position=resource.source)
    else:
        found = team.diagnostic(path, got=got, expected=expected)
    return dataclasses.replace(found, subject=resource.key)


@rule(
    "SY-TEN-004",
    "Every team namespace has a ResourceQuota that caps GPUs.",
    target="resource:tenancy/ResourceQuota",
    needs_resources=True,
    references=("kyverno:add-ns-quota",),
    hint=f"the tenancy plane renders spec.quota as ResourceQuota 'team-quota' with {GPU_QUOTA}; set spec.quota.gpu "
    "(0 for none)",
)
def namespace_has_gpu_quota(ctx: PolicyContext) -> Iterator[Diagnostic]:
    quotas_in = by_namespace(ctx, "ResourceQuota")
    for resource, namespace in namespaces(ctx):
        quotas = quotas_in.get(namespace, [])
        if not any(GPU_QUOTA in (q.get("spec", {}).get("hard") or {}) for q in quotas):
            got = f"namespace '{namespace}' with " + ("a quota without " + GPU_QUOTA if quotas else "no ResourceQuota")
            yield on_team(ctx, resource, ("spec", "quota"), got=got, expected=f"a ResourceQuota with {GPU_QUOTA}")


@rule(
    "SY-TEN-005",
    "Every team namespace has a LimitRange with container defaults.",
    target="resource:tenancy/LimitRange",
    needs_resources=True,
    references=("kyverno:add-ns-quota",),
    hint="the tenancy plane renders LimitRange 'team-defaults': pods that set no resources get its defaults",
)
def namespace_has_limit_range(ctx: PolicyContext) -> Iterator[Diagnostic]:
    ranges_in = by_namespace(ctx, "LimitRange")
    for resource, namespace in namespaces(ctx):
        ranges = ranges_in.get(namespace, [])
        containers = [
            item
            for r in ranges
            for item in r.get("spec", {}).get("limits") or ()
            if item.get("type") == "Container" and item.get("default") and item.get("defaultRequest")
        ]
        if not containers:
            got = f"namespace '{namespace}' with " + ("no container defaults" if ranges else "no LimitRange")
            yield on_team(
                ctx, resource, ("spec",), got=got, expected="a LimitRange with Container default and defaultRequest"
            )


def _default_deny(policy: Mapping[str, Any]) -> bool:
    spec = policy.get("spec") or {}
    return (
        spec.get("podSelector") == {}
        and {"Ingress", "Egress"} <= set(spec.get("policyTypes") or ())
        and not spec.get("ingress")
        and not spec.get("egress")
    )


@rule(
    "SY-TEN-006",
    "Every team namespace denies all traffic by default.",
    target="resource:tenancy/NetworkPolicy",
    needs_resources=True,
    references=("kyverno:add-networkpolicy",),
    hint="the tenancy plane renders NetworkPolicy 'default-deny' (all pods, Ingress and Egress, no rules); "
    "open traffic with narrower policies beside it",
)
def namespace_default_deny(ctx: PolicyContext) -> Iterator[Diagnostic]:
    policies_in = by_namespace(ctx, "NetworkPolicy")
    for resource, namespace in namespaces(ctx):
        if not any(_default_deny(p) for p in policies_in.get(namespace, [])):
            yield on_team(
                ctx,
                resource,
                ("spec",),
                got=f"namespace '{namespace}' with no default-deny NetworkPolicy",
                expected="podSelector {}, policyTypes [Ingress, Egress], no rules",
            )


@rule(
    "SY-TEN-007",
    "Team namespaces enforce the restricted Pod Security Standard.",
    target="resource:tenancy/Namespace",
    needs_resources=True,
    references=("kyverno:podsecurity-subrule-restricted",),
    hint=f"label the namespace {ENFORCE}: restricted (the tenancy plane does): admission then refuses "
    "privileged, root and escalating pods",
)
def namespace_restricted(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource, namespace in namespaces(ctx):
        level = (resource.body.get("metadata", {}).get("labels") or {}).get(ENFORCE)
        if level != "restricted":
            yield on_team(
                ctx,
                resource,
                ("metadata", "name"),
                got=f"namespace '{namespace}' with {ENFORCE}: {level or 'unset'}",
                expected="restricted",
            )


@rule(
    "SY-TEN-008",
    "No team is bound to cluster-admin.",
    target="resource:tenancy/RoleBinding",
    needs_resources=True,
    references=("kube-linter:cluster-admin-role-binding", "kyverno:restrict-binding-clusteradmin"),
    hint="bind the team's group to the 'edit' ClusterRole in its namespace (spec.group); cluster-admin is "
    "the whole cluster",
)
def no_cluster_admin(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource in ctx.resources or ():
        if resource.plane != PLANE or resource.body.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        role = resource.body.get("roleRef") or {}
        if role.get("name") in ADMIN_ROLES:
            yield on_team(
                ctx,
                resource,
                ("spec", "group"),
                got=f"{resource.body.get('kind')} '{resource.name}' to {role.get('name')}",
                expected="a namespaced role such as edit",
            )
