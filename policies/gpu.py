"""Rules on GPU capacity and what it costs: the infra plane's EKS node groups (``aws:eks/nodeGroup:NodeGroup``,
one per ``nodePools`` entry of ``Pulumi.<stack>.yaml``), its ``Cost`` of the stack's pools at their
maximum size and its ``GpuBudget`` per team (the team's GPU quota priced at the stack's dearest GPU
pool, beside ``spec.budget.monthlyUsd``).

Pulumi resources carry no source position: a finding on a node group points at the pool's entry in
``Pulumi.<stack>.yaml`` (line 1 when it cannot be found), names the stack file and the pool, and has
the Resource's key as its subject.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from shipyard.planes.infra import prices
from shipyard.sdk import Diagnostic, PolicyContext, SourcePosition, rule
from shipyard.sdk.files import linked
from shipyard.sdk.kubernetes import GPU_RESOURCE, POOL_LABEL
from shipyard.sdk.model import Resource

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
PRODUCTION = "prod"


def node_groups(ctx: PolicyContext) -> Iterator[tuple[Resource, Mapping[str, Any]]]:
    for resource in ctx.resources or ():
        if resource.plane == "infra" and resource.kind == NODE_GROUP:
            yield resource, resource.body.get("inputs", {})


def is_gpu(inputs: Mapping[str, Any]) -> bool:
    """A node group of GPU instances (by the price table), whatever its AMI says."""
    return any(prices.gpus_of(t) for t in inputs.get("instanceTypes") or ())


def gpu_groups(ctx: PolicyContext) -> Iterator[tuple[Resource, Mapping[str, Any]]]:
    return ((r, inputs) for r, inputs in node_groups(ctx) if is_gpu(inputs))


def pool_name(resource: Resource, inputs: Mapping[str, Any]) -> str:
    return str(inputs.get("nodeGroupName") or resource.name)


def on_pool(
    ctx: PolicyContext, resource: Resource, inputs: Mapping[str, Any], field: str, *, got: str, expected: str
) -> Diagnostic:
    """A finding on a node pool's ``field`` in its stack's config file, at the pool's entry there."""
    stack_file, pool = f"Pulumi.{resource.scope}.yaml", pool_name(resource, inputs)
    where = f"{stack_file} nodePools[{pool}].{field}"
    position, snippet = _pool_entry(ctx, stack_file, pool)
    found = Diagnostic.mismatch(
        "policy", got=got, expected=expected, key_path=where, position=position, snippet=snippet
    )
    return dataclasses.replace(found, subject=resource.key)


def _pool_entry(ctx: PolicyContext, stack_file: str, pool: str) -> tuple[SourcePosition, str | None]:
    """Where ``- name: <pool>`` is written in the stack's config (line 1 of the file when it is not)."""
    path = None if ctx.root is None else ctx.root / stack_file
    if path is not None and linked(ctx.root, path) is None and path.is_file():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() in (f"- name: {pool}", f'- name: "{pool}"'):
                return SourcePosition(stack_file, number, line.index("name") + 1), line
    return SourcePosition(stack_file, 1, 1), None


@rule(
    "SY-GPU-001",
    "GPU node pools carry the nvidia.com/gpu NoSchedule taint.",
    target=NODE_GROUP,
    needs_resources=True,
    hint="the infra program taints every GPU pool (infra/components); without it any pod lands on GPU nodes",
)
def gpu_pool_tainted(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource, inputs in gpu_groups(ctx):
        taints = inputs.get("taints") or ()
        if not any(t.get("key") == GPU_RESOURCE and t.get("effect") == "NO_SCHEDULE" for t in taints):
            got = f"taints {[t.get('key') for t in taints]}" if taints else "no taint"
            yield on_pool(ctx, resource, inputs, "taints", got=got, expected=f"{GPU_RESOURCE}=true:NoSchedule")


@rule(
    "SY-GPU-002",
    "GPU node pools are labelled with their pool and accelerator.",
    target=NODE_GROUP,
    needs_resources=True,
    hint=f"workloads select a GPU pool by {POOL_LABEL}; the infra program labels every pool with it and "
    "shipyard.dev/accelerator",
)
def gpu_pool_labelled(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource, inputs in gpu_groups(ctx):
        labels = inputs.get("labels") or {}
        missing = [k for k in (POOL_LABEL, "shipyard.dev/accelerator") if not labels.get(k)]
        if labels.get(POOL_LABEL) not in (None, pool_name(resource, inputs)):
            missing.append(f"{POOL_LABEL}={pool_name(resource, inputs)}")
        if missing:
            yield on_pool(ctx, resource, inputs, "labels", got=f"labels {sorted(labels)}", expected=f"{missing} set")


@rule(
    "SY-GPU-003",
    "GPU node pools have a maximum size.",
    target=NODE_GROUP,
    needs_resources=True,
    hint="set max on the pool in Pulumi.<stack>.yaml: an uncapped GPU pool is an uncapped bill",
)
def gpu_pool_capped(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource, inputs in gpu_groups(ctx):
        scaling = inputs.get("scalingConfig") or {}
        maximum, minimum = scaling.get("maxSize"), scaling.get("minSize") or 0
        if not maximum or maximum < minimum:
            yield on_pool(
                ctx, resource, inputs, "max", got=f"maxSize {maximum}", expected=f"a maximum >= min {minimum}"
            )


@rule(
    "SY-GPU-004",
    "GPU node pools run an NVIDIA AMI.",
    target=NODE_GROUP,
    needs_resources=True,
    hint="set ami: AL2023_x86_64_NVIDIA (or BOTTLEROCKET_x86_64_NVIDIA): the standard AMI has no GPU driver",
)
def gpu_pool_nvidia_ami(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource, inputs in gpu_groups(ctx):
        ami = str(inputs.get("amiType") or "")
        if "NVIDIA" not in ami:
            yield on_pool(ctx, resource, inputs, "ami", got=f"'{ami or 'unset'}'", expected="an NVIDIA AMI type")


@rule(
    "SY-GPU-005",
    "The stack's GPU pools at their maximum stay within its GPU ceiling.",
    target="resource:infra/Cost",
    needs_resources=True,
    hint="lower a GPU pool's max, or raise gpuCeiling in review with whoever owns the budget",
)
def within_gpu_ceiling(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource in ctx.resources or ():
        if resource.plane != "infra" or resource.kind != "Cost" or resource.name != "node-pools":
            continue
        ceiling, at_max = resource.body.get("gpuCeiling"), resource.body.get("gpusAtMax", 0)
        if ceiling is not None and at_max > ceiling:
            found = Diagnostic.mismatch(
                "policy",
                got=f"GPU pools reaching {at_max} GPUs at max size",
                expected=f"at most gpuCeiling {ceiling}",
                key_path=f"{resource.body.get('file', f'Pulumi.{resource.scope}.yaml')} gpuCeiling",
                position=SourcePosition(f"Pulumi.{resource.scope}.yaml", 1, 1),
            )
            yield dataclasses.replace(found, subject=resource.key)


def _prod_model_pools(ctx: PolicyContext) -> set[str]:
    """The GPU pools production model deployments are scheduled on."""
    pools = set()
    for spec in ctx.specs.of_kind("ModelDeployment"):
        if PRODUCTION in spec.spec.serve and spec.spec.resources.gpu_pool:
            pools.add(spec.spec.resources.gpu_pool)
    return pools


@rule(
    "SY-GPU-006",
    "Production model serving does not run on spot capacity.",
    target=NODE_GROUP,
    mandatory=False,
    needs_resources=True,
    hint="serve production from an ON_DEMAND pool (capacity: ON_DEMAND): a spot reclaim takes replicas down "
    "at once; keep spot for training",
)
def no_spot_for_prod_serving(ctx: PolicyContext) -> Iterator[Diagnostic]:
    serving = _prod_model_pools(ctx)
    for resource, inputs in node_groups(ctx):
        spot = inputs.get("capacityType") == "SPOT"
        if resource.scope == PRODUCTION and spot and pool_name(resource, inputs) in serving:
            yield on_pool(
                ctx, resource, inputs, "capacity", got="SPOT for a pool serving production models", expected="ON_DEMAND"
            )


@rule(
    "SY-GPU-007",
    "A team's GPU quota, priced, fits its monthly budget.",
    target="resource:infra/GpuBudget",
    needs_resources=True,
    hint="lower spec.quota.gpu or raise spec.budget.monthlyUsd (with finance): the quota is what the team can "
    "run, every hour of the month",
)
def quota_within_budget(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource in ctx.resources or ():
        if resource.plane != "infra" or resource.kind != "GpuBudget":
            continue
        cost, budget = resource.body.get("usdPerMonthAtQuota", 0), resource.body.get("budgetUsd", 0)
        if cost > budget:
            got = f"{resource.body.get('gpuQuota')} GPUs at ${cost:,.2f}/month in {resource.scope}"
            expected = f"within the budget of ${budget:,.2f}"
            team = ctx.specs.named("Team", resource.name)
            if team is not None:
                found = team.diagnostic(("spec", "budget", "monthlyUsd"), got=got, expected=expected)
            else:
                found = Diagnostic.mismatch("policy", got=got, expected=expected, position=resource.source)
            yield dataclasses.replace(found, subject=resource.key)
