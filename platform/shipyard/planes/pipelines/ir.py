"""What a reviewer needs from a compiled KFP pipeline: its semantic summary, not the IR YAML.

The summary names components (image, a digest of their code), tasks (component,
upstream tasks, resources, tolerations, node selector) and parameters (type,
default), so a plan says "train: accelerator count 1 → 2", not "line 412 changed".
"""

from __future__ import annotations

from typing import Any

import yaml

from shipyard.sdk.model import content_digest

#: libyaml's loader where PyYAML has it: an IR is read on every plan, and the pure-Python one is ~10x slower.
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def documents(ir: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline spec and the platform spec (kfp-kubernetes settings) of an IR file."""
    docs = [d for d in yaml.load_all(ir, Loader=SAFE_LOADER) if d]
    pipeline = docs[0]
    platform = docs[1] if len(docs) > 1 else {}
    return pipeline, platform


def summary(ir: str) -> dict[str, Any]:
    pipeline, platform = documents(ir)
    return summary_of(pipeline, platform, content_digest(ir))


def summary_of(pipeline: dict[str, Any], platform: dict[str, Any], ir_digest: str) -> dict[str, Any]:
    """The summary of an IR already parsed (as a Kubeflow Pipelines server returns it)."""
    executors = pipeline.get("deploymentSpec", {}).get("executors", {})
    kubernetes = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    components = pipeline.get("components", {})

    def component_summary(name: str) -> dict[str, Any]:
        executor = components.get(name, {}).get("executorLabel")
        container = executors.get(executor, {}).get("container", {})
        code = "\n".join(container.get("command", []) + container.get("args", []))
        return {"image": container.get("image"), "code": content_digest(code)} if container else {"pipeline": True}

    tasks = {}
    for name, task in sorted(pipeline.get("root", {}).get("dag", {}).get("tasks", {}).items()):
        component = task.get("componentRef", {}).get("name", "")
        executor = components.get(component, {}).get("executorLabel")
        container = executors.get(executor, {}).get("container", {})
        entry: dict[str, Any] = {"component": component.removeprefix("comp-"), "after": task.get("dependentTasks", [])}
        if container.get("resources"):
            entry["resources"] = _resources(container["resources"])
        placement = kubernetes.get(executor, {})
        for field in ("tolerations", "nodeSelector"):
            if field in placement:
                entry[field] = placement[field]
        tasks[name] = entry
    parameters = {}
    for name, definition in sorted(pipeline.get("root", {}).get("inputDefinitions", {}).get("parameters", {}).items()):
        parameters[name] = {k: v for k, v in definition.items() if k in ("parameterType", "defaultValue", "isOptional")}
    return {
        "name": pipeline.get("pipelineInfo", {}).get("name"),
        "components": {name.removeprefix("comp-"): component_summary(name) for name in sorted(components)},
        "tasks": tasks,
        "parameters": parameters,
        "ir": ir_digest,
    }


def _resources(resources: dict[str, Any]) -> dict[str, Any]:
    # KFP writes the accelerator twice, as resourceType/resourceCount and the older type/count.
    accelerator = resources.get("accelerator")
    if accelerator and "resourceType" in accelerator:
        accelerator = {k: v for k, v in accelerator.items() if k not in ("type", "count")}
        return resources | {"accelerator": accelerator}
    return resources


def installs_at_start(ir: str) -> list[str]:
    """Components whose container installs packages when it starts: slow, unpinned, and needs the network."""
    pipeline, _ = documents(ir)
    executors = pipeline.get("deploymentSpec", {}).get("executors", {})
    return sorted(
        label.removeprefix("exec-")
        for label, executor in executors.items()
        if "pip install" in " ".join(executor.get("container", {}).get("command", []))
    )
