"""Rules on training pipelines (``pipelines/<team>/<name>/pipeline.yaml`` and the KFP IR compiled from them):
GPUs are asked for completely and on pools that exist, schedules stay modest, someone owns each pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from shipyard.core.yamlsource import read_yaml
from shipyard.sdk import Diagnostic, PolicyContext, rule
from shipyard.sdk.files import linked
from shipyard.sdk.model import Resource

PIPELINE = "Pipeline"
PLANE = "pipelines"
#: The node selector label the platform puts on a GPU task (the pool it runs on).
POOL_LABEL = "shipyard.dev/pool"
#: Where each infra stack declares its node pools: ``config["shipyard:platform"].nodePools[].name``.
STACK_GLOB = "Pulumi.*.yaml"
STACK_CONFIG = "shipyard:platform"


def node_pools(root: Path | None) -> dict[str, set[str]] | None:
    """Each infra stack's node pool names; None when there is no root or no readable stack (nothing to check against).

    A stack file that is a link or does not parse is skipped here: the infra plane reports it.
    """
    if root is None:
        return None
    pools: dict[str, set[str]] = {}
    for path in sorted(root.glob(STACK_GLOB)):
        if path.name.count(".") != 2 or linked(root, path) is not None:
            continue
        docs, _ = read_yaml(path, path.name)
        for doc in docs:
            config = doc.data.get("config") if isinstance(doc.data, dict) else None
            platform = config.get(STACK_CONFIG) if isinstance(config, dict) else None
            declared = platform.get("nodePools") if isinstance(platform, dict) else None
            if isinstance(declared, list):
                stack = path.name.split(".")[1]
                pools[stack] = {str(p["name"]) for p in declared if isinstance(p, dict) and "name" in p}
    return pools or None


@rule(
    "SY-PIP-001",
    "A GPU task names its accelerator type, a count, and a node pool every stack declares.",
    target=f"spec:{PIPELINE}",
    hint="set spec.gpu[].accelerator (e.g. nvidia.com/gpu), count >= 1 and a pool from Pulumi.<stack>.yaml nodePools",
)
def gpu_tasks_are_complete(ctx: PolicyContext) -> Iterator[Diagnostic]:
    pools = node_pools(ctx.root)
    everywhere = set.intersection(*pools.values()) if pools else set()
    for spec in ctx.specs.of_kind(PIPELINE):
        for index, task in enumerate(spec.spec.gpu):
            path = ("spec", "gpu", index)
            if not task.accelerator or "/" not in task.accelerator:
                yield spec.diagnostic(
                    (*path, "accelerator"),
                    got=f"accelerator '{task.accelerator}'",
                    expected="an extended resource name (vendor/resource, e.g. nvidia.com/gpu)",
                )
            if task.count < 1:
                yield spec.diagnostic((*path, "count"), got=f"{task.count} GPUs", expected="at least 1")
            if not task.pool:
                yield spec.diagnostic((*path, "pool"), got="no pool", expected="a GPU node pool")
            elif pools is not None and task.pool not in everywhere:
                missing = sorted(stack for stack, names in pools.items() if task.pool not in names)
                yield spec.diagnostic(
                    (*path, "pool"),
                    got=f"pool '{task.pool}' (not in stack {', '.join(missing)})",
                    expected=f"a node pool of every stack: {', '.join(sorted(everywhere)) or 'none'}",
                )


def _accelerator(task: dict[str, Any]) -> dict[str, Any] | None:
    resources = task.get("resources")
    accelerator = resources.get("accelerator") if isinstance(resources, dict) else None
    return accelerator if isinstance(accelerator, dict) else None


def _count(accelerator: dict[str, Any]) -> int:
    raw = accelerator.get("resourceCount", accelerator.get("count"))
    try:
        return int(str(raw))
    except ValueError:
        return 0


def _resource_finding(resource: Resource, task: str, *, got: str, expected: str) -> Diagnostic:
    found = Diagnostic.mismatch(
        "policy", got=got, expected=expected, position=resource.source, key_path=f"tasks.{task}"
    )
    return replace(found, subject=resource.key)  # a waiver names the Resource


@rule(
    "SY-PIP-002",
    "In the compiled pipeline, every task asking for an accelerator has its type, a count and a pool selector.",
    target=f"resource:{PLANE}/{PIPELINE}",
    needs_resources=True,
    hint="declare the task in the spec's gpu list (the platform adds type, count and pool) instead of in pipeline code",
)
def compiled_gpu_tasks_are_placed(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource in ctx.resources or ():
        if resource.plane != PLANE or resource.kind != PIPELINE:
            continue
        tasks = resource.body.get("tasks")
        for name, task in sorted(tasks.items()) if isinstance(tasks, dict) else ():
            accelerator = _accelerator(task) if isinstance(task, dict) else None
            if accelerator is None:
                continue
            kind = accelerator.get("resourceType", accelerator.get("type"))
            if not kind:
                yield _resource_finding(resource, name, got="an accelerator without a type", expected="a type")
            if _count(accelerator) < 1:
                yield _resource_finding(
                    resource, name, got=f"accelerator count {accelerator.get('resourceCount')!r}", expected="at least 1"
                )
            selector = task.get("nodeSelector", {})
            labels = selector.get("labels", {}) if isinstance(selector, dict) else {}
            if not isinstance(labels, dict) or not labels.get(POOL_LABEL):
                yield _resource_finding(
                    resource, name, got="a GPU task with no pool node selector", expected=f"nodeSelector {POOL_LABEL}"
                )


@rule(
    "SY-PIP-003",
    "A schedule runs at most once an hour.",
    target=f"spec:{PIPELINE}",
    mandatory=False,
    hint="a training run per hour at most: set the cron's minute field to one number (e.g. '0 * * * *' or '0 3 * * *')",
)
def schedule_at_most_hourly(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for spec in ctx.specs.of_kind(PIPELINE):
        schedule = spec.spec.schedule
        if schedule is None:
            continue
        minute = schedule.cron.split(" ")[0]
        if not minute.isdigit():
            yield spec.diagnostic(
                ("spec", "schedule", "cron"),
                got=f"'{schedule.cron}' (minute field '{minute}': more than once an hour)",
                expected="one minute of the hour (a single number)",
            )


@rule(
    "SY-PIP-004",
    "Every pipeline names an owner.",
    target=f"spec:{PIPELINE}",
    hint="set spec.owner to a @handle, @org/team or e-mail: who is paged when a run fails",
)
def pipeline_has_owner(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for spec in ctx.specs.of_kind(PIPELINE):
        owner = getattr(spec.spec, "owner", None)
        if not isinstance(owner, str) or not owner.strip():
            yield spec.diagnostic(("spec", "owner"), got="no owner", expected="an owner")
