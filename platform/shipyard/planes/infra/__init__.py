"""Infra plane: the Pulumi program in ``infra/``, one stack per environment (``Pulumi.<stack>.yaml``).

``desired`` runs the program under Pulumi's mocks, one process per stack (mocks are
process-global), and turns every registered resource into a Resource keyed
``infra/<stack>/<type>::<name>`` whose body is its inputs, parent and dependencies. So a pull
request's plan (``--target base:<rev>``) shows exactly which cloud resources it adds, changes
or removes, field by field, with no CLI and no credentials. Beside them it plans the money:
``Cost`` per node pool at its maximum size and for the stack, and ``GpuBudget`` per team
(its GPU quota as GPU-hours a month, priced, against its budget).

The local target runs no cloud, so a live ``local`` plan has no infra. A base plan with no
environment compares every stack. A cloud environment with a stack (``--target dev``) is
planned by ``pulumi preview`` through the Automation API instead of the mocks: both sides
come from the engine's steps, so outputs of deployed resources are real (``preview.py``).
That needs the Pulumi CLI and credentials; without them the plan says so and stops. The preview
is the plane's pinned fact: its proposed side is the desired state, its deployed side what
``observe`` returns, both recorded in the plan. Cost and budgets are a pull request's concern,
so only base plans carry them.

Applying a deployed stack is one ``StackUpdate`` change, first in the stack's order: it names
the resources the update touches and carries (as payload, in the plan's hash) the update
plan the preview saved; its applier runs ``pulumi up --plan`` with exactly that plan. The
resources' own changes are what the reviewer reads; the stack's update applies them, and
verify checks them, so their appliers do nothing more. Apply refuses the plan first if the
stack moved since the preview (the deployed side is the plane's observed fingerprint), which
``pulumi up --plan`` alone does not check.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from shipyard.planes.infra import prices
from shipyard.planes.infra.stack import StackConfig, config_sources, load_stack, source_of, stack_file, stacks
from shipyard.sdk import (
    Change,
    DesiredContext,
    Diagnostic,
    Facts,
    Plane,
    Resource,
    Severity,
    Target,
    Unit,
    UserError,
    hookimpl,
)
from shipyard.sdk.model import MONTHLY_COST
from shipyard.sdk.platform import TEAM
from shipyard.sdk.processes import TELEMETRY_OFF

PLANE = "infra"
STACK_UPDATE = "StackUpdate"


class InfraPlane(Plane):
    name = PLANE
    order = 10
    libraries = ("pulumi", "pulumi-aws", "pulumi-kubernetes")

    def pin(self, ctx: DesiredContext, target: Target) -> Facts:
        """A deployed stack's ``pulumi preview``: both sides of every step, as the engine reported them."""
        chosen = _stacks_for(ctx)
        if not chosen:
            return {}
        from shipyard.planes.infra import preview

        (stack,) = chosen
        load_stack(ctx.root, stack)  # bad config: stop before running anything
        found = preview.run(ctx.root, stack)
        return {
            "stack": stack,
            "proposed": found.proposed,
            "deployed": found.deployed,
            "updatePlan": found.update_plan,
        }

    def units(self, ctx: DesiredContext) -> Sequence[Unit]:
        """One per stack: the program reads ``infra/``, its stack file and every Team spec (tenancy, budgets)."""
        teams = sorted({t.source.file for t in ctx.specs.of_kind(TEAM.name)})
        program = ("infra", "Pulumi.yaml", *teams)
        facts = dict(ctx.facts) or None
        return [Unit(stack, (*program, stack_file(ctx.root, stack).name), facts) for stack in _stacks_for(ctx)]

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        chosen = [stack for stack in _stacks_for(ctx) if ctx.wants(stack)]
        configs = {stack: load_stack(ctx.root, stack) for stack in chosen}  # bad config: stop before running
        sources = {stack: config_sources(ctx.root, stack) for stack in chosen}

        def placed(resource: Resource) -> Resource:
            """At the config entry it is made from: where a reviewer changes it, and where findings point."""
            return replace(resource, source=source_of(sources[resource.scope], resource.name))

        if ctx.live and chosen:
            stack = ctx.facts["stack"]
            proposed = [placed(resource_of(stack, item)) for item in ctx.facts["proposed"]]
            deployed = {r.key: r.body for r in (resource_of(stack, item) for item in ctx.facts["deployed"])}
            touched = sorted(
                {r.key for r in proposed if deployed.get(r.key) != r.body}
                | (deployed.keys() - {r.key for r in proposed})
            )
            update = Resource(
                PLANE,
                STACK_UPDATE,
                stack,
                stack,
                {"resources": touched},
                payload={"updatePlan": ctx.facts.get("updatePlan", {})},
            )
            return [update, *proposed]
        graphs = evaluate_stacks(ctx.root, chosen, checked=True)
        planned: list[Resource] = []
        for stack in chosen:
            # Pulumi registers resources as their inputs resolve, in an order that varies from run to run;
            # the plan lists them by name, so the same program always makes the same plan (and hash).
            registered = sorted((resource_of(stack, item) for item in graphs[stack]), key=lambda r: r.key)
            planned += map(placed, registered)
            planned += cost_resources(ctx, stack, configs[stack])
        return planned

    def check(self, ctx: DesiredContext, resources: Sequence[Resource]) -> Iterable[Diagnostic]:
        for stack in filter(ctx.wants, _stacks_for(ctx)):
            config = load_stack(ctx.root, stack)
            for budget in _team_budgets(ctx, config, stack):
                if budget.body["usdPerMonthAtQuota"] > budget.body["budgetUsd"]:
                    yield Diagnostic.mismatch(
                        "infra/gpu-budget",
                        got=f"{budget.body['gpuQuota']} GPUs x 730 h = ${budget.body['usdPerMonthAtQuota']:,.0f}/month",
                        expected=f"within the team's budget of ${budget.body['budgetUsd']:,.0f}/month ({stack})",
                        hint="lower quota.gpu or raise budget.monthlyUsd in the team's spec",
                        position=budget.source,
                        severity=Severity.WARNING,
                    )

    def observe(self, ctx: DesiredContext, target: Target) -> Iterable[Resource]:
        if "deployed" not in ctx.facts:
            return []  # the local target runs no cloud; an environment without a stack has no infra
        stack = ctx.facts["stack"]
        settled = Resource(PLANE, STACK_UPDATE, stack, stack, {"resources": []})  # a deployed stack has none pending
        return [settled, *(resource_of(stack, item) for item in ctx.facts["deployed"])]

    def gpu_pools(self, root: Path) -> dict[str, list[str]] | None:
        """``NodePools``: each GPU pool with the stacks that declare it (for the planes that schedule on them)."""
        found = stacks(root)
        if not found:
            return None
        # Asked once per workload that names a pool: each stack file is read once while it stays the same.
        files = tuple((stack, _identity(stack_file(root, stack))) for stack in found)
        return {name: list(where) for name, where in _pools(root, files).items()}

    def pool_files(self, root: Path) -> list[str]:
        return [stack_file(root, stack).name for stack in stacks(root)]

    def apply(self, change: Change, ctx: DesiredContext, target: Target) -> None:
        """The stack's update runs the reviewed update plan; its resources' changes are what it applies."""
        if change.kind != STACK_UPDATE:
            return  # applied by this stack's StackUpdate, ordered before it; verify checks it took
        if change.desired is None or not change.desired.payload.get("updatePlan"):
            raise UserError(
                f"{change.key} carries no saved Pulumi update plan",
                hint=f"plan it from a deployed stack: shipyard plan -t {change.scope} --out plan.json",
            )
        from shipyard.planes.infra import preview

        preview.up(ctx.root, change.scope, change.desired.payload["updatePlan"])


def _identity(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_mtime_ns, status.st_size


@functools.cache
def _pools(root: Path, files: tuple[tuple[str, tuple[int, int]], ...]) -> dict[str, tuple[str, ...]]:
    pools: dict[str, list[str]] = {}
    for stack, _ in files:
        for pool in load_stack(root, stack).gpu_pools:
            pools.setdefault(pool.name, []).append(stack)
    return {name: tuple(where) for name, where in pools.items()}


def _stacks_for(ctx: DesiredContext) -> list[str]:
    known = stacks(ctx.root)
    if ctx.environment in known:
        return [ctx.environment]
    if ctx.environment == "local" and not ctx.live:
        return known  # a pull request's plan: every stack it may change
    return []


def evaluate_stacks(root: Path, chosen: list[str], *, checked: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Each stack's resource graph under mocks, in parallel processes, as many at once as there are cores
    (each is CPU-bound and holds its whole graph: a third on two cores would add memory, not speed);
    ``checked``: each stack's file was read with positions (``load_stack``) already, not read so again."""
    flags = ["--checked"] if checked else []

    def run(stack: str) -> dict[str, Any]:
        argv = [sys.executable, "-m", "shipyard.planes.infra.evaluate", str(root), stack, *flags]
        done = subprocess.run(argv, capture_output=True, text=True, env=_env(), check=False)
        try:
            answer: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            answer = {"error": f"the program stopped without an answer:\n{done.stderr[-3000:]}"}
        return answer

    with ThreadPoolExecutor(max_workers=max(1, min(len(chosen), os.cpu_count() or 1))) as pool:
        answers = dict(zip(chosen, pool.map(run, chosen), strict=True))
    graphs = {}
    for stack, answer in answers.items():
        if "error" in answer:
            raise UserError(
                f"the infra program failed for stack '{stack}' under mocks: {answer['error']}",
                hint=f"run it alone: python -m shipyard.planes.infra.evaluate . {stack}",
            )
        graphs[stack] = answer["resources"]
    return graphs


def _env() -> dict[str, str]:
    return os.environ | TELEMETRY_OFF | {"PULUMI_SKIP_UPDATE_CHECK": "true"}


def short_name(urn: str) -> str:
    """``type::name`` of a URN: how a parent or a dependency reads in a plan."""
    qualified, _, name = urn.rpartition("::")
    return f"{qualified.rsplit('$', 1)[-1]}::{name}"


def resource_of(stack: str, item: dict[str, Any]) -> Resource:
    """One Pulumi resource (a mock registration, or an entry of a stack's state: the same fields) as a Resource."""
    body: dict[str, Any] = {"inputs": item.get("inputs", {})}
    parent = short_name(item["parent"]) if item.get("parent") else ""
    if parent and not parent.startswith("pulumi:pulumi:Stack"):
        body["parent"] = parent
    if item.get("dependencies"):
        body["dependsOn"] = [short_name(d) for d in item["dependencies"]]
    return Resource(PLANE, item["type"], stack, item["urn"].rpartition("::")[2], body)


def cost_resources(ctx: DesiredContext, stack: str, config: StackConfig) -> Iterator[Resource]:
    """The money a stack can spend: each pool at max size, the stack's total, each team's GPU quota."""
    source = stack_file(ctx.root, stack).name
    total, gpus = 0.0, 0
    for pool in config.node_pools:
        nodes = pool.max if pool.max is not None else pool.min
        monthly = prices.monthly_at_max(pool.instance_types, pool.capacity, nodes)
        total += monthly
        gpus += pool.gpus_per_node * nodes
        body = {
            "instanceTypes": pool.instance_types,
            "capacity": pool.capacity,
            "maxNodes": nodes,
            "gpusAtMax": pool.gpus_per_node * nodes,
            "monthlyUsdAtMax": monthly,
        }
        yield Resource(PLANE, "Cost", stack, f"node-pool/{pool.name}", body, None)
    summary = {
        MONTHLY_COST: round(total, 2),  # the stack's bill with every pool at max size: the plan adds it up
        "gpusAtMax": gpus,
        "gpuCeiling": config.gpu_ceiling,
        "prices": f"{prices.TABLE['region']} {prices.TABLE['date']}",
        "file": source,
    }
    yield Resource(PLANE, "Cost", stack, "node-pools", summary)
    yield from _team_budgets(ctx, config, stack)


def _team_budgets(ctx: DesiredContext, config: StackConfig, stack: str) -> list[Resource]:
    """Each team's GPU quota as GPU-hours a month, priced at the stack's dearest GPU pool, beside its budget."""
    per_gpu_hour = max((prices.gpu_hour_price(p.instance_types, p.capacity) for p in config.gpu_pools), default=0.0)
    found = []
    for team in ctx.specs.of_kind(TEAM.name):
        hours = team.spec.quota.gpu * prices.HOURS_PER_MONTH
        body = {
            "gpuQuota": team.spec.quota.gpu,
            "gpuHoursPerMonth": hours,
            "usdPerMonthAtQuota": round(hours * per_gpu_hour, 2),
            "budgetUsd": team.spec.budget.monthly_usd,
        }
        where = team.position("spec", "quota", "gpu")
        found.append(Resource(PLANE, "GpuBudget", stack, team.name, body, where))
    return found


@hookimpl
def shipyard_planes() -> list[Plane]:
    return [InfraPlane()]
