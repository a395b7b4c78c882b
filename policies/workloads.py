"""Rules on the pods the platform runs: InferenceServices' predictor containers (models plane) and
pipeline task pods (pipelines plane, read from the compiled IR's summary in the Pipeline's body).

A finding points at the spec field the object was rendered from (the ModelDeployment or the
Pipeline spec) and names the Resource as its subject, so a waiver can match it.

Security context (privileged, privilege escalation, non-root, read-only root filesystem,
capabilities) is checked on InferenceServices only: KFP's IR has no securityContext for a task,
so a pipeline's pods take Kubeflow's defaults and the namespace's Pod Security admission
(``restricted``, SY-TEN-007) is what holds them. Images of KServe's built-in runtimes
(``runtime: mlflow``, ``sklearn``...) are chosen by the cluster's ServingRuntimes, not by the
repository, so the image rules read custom containers and pipeline components only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from shipyard.planes.models.validation import spec_path
from shipyard.sdk import Diagnostic, PolicyContext, rule
from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.kubernetes import GPU_RESOURCE
from shipyard.sdk.model import FieldPath, Resource

DEPLOYMENT = "ModelDeployment"
PIPELINE = "Pipeline"
INFERENCE_SERVICE = "resource:models/InferenceService"
PIPELINE_RESOURCE = "resource:pipelines/Pipeline"
REGISTRIES_FILE = Path(__file__).with_name("registries.yaml")


@dataclasses.dataclass(frozen=True)
class Container:
    """One container a workload runs: where it sits in the rendered object, and what it says."""

    resource: Resource
    path: FieldPath  # in the rendered object (InferenceService) or the Pipeline body
    body: Mapping[str, Any]
    tolerations: Sequence[Mapping[str, Any]]
    custom: bool  # an image the repository chose (not a KServe built-in runtime's)
    label: str  # how a finding names it


def allowed_registries() -> tuple[str, ...]:
    """The image prefixes workloads may pull from (``policies/registries.yaml``)."""
    data = yaml.safe_load(REGISTRIES_FILE.read_text(encoding="utf-8")) or {}
    return tuple(str(r).rstrip("/") + "/" for r in data.get("registries", []))


def _desired(ctx: PolicyContext, plane: str, kind: str) -> list[Resource]:
    return [r for r in ctx.resources or () if r.plane == plane and r.kind == kind]


def inference_containers(ctx: PolicyContext) -> Iterator[Container]:
    for resource in _desired(ctx, "models", "InferenceService"):
        predictor = resource.body.get("spec", {}).get("predictor", {})
        tolerations = predictor.get("tolerations") or ()
        if isinstance(predictor.get("model"), Mapping):
            path: FieldPath = ("spec", "predictor", "model")
            yield Container(resource, path, predictor["model"], tolerations, False, f"{resource.name} model server")
        for i, container in enumerate(predictor.get("containers") or ()):
            path = ("spec", "predictor", "containers", i)
            yield Container(resource, path, container, tolerations, True, f"{resource.name} container {i}")


def pipeline_tasks(ctx: PolicyContext) -> Iterator[Container]:
    for resource in _desired(ctx, "pipelines", "Pipeline"):
        components = resource.body.get("components", {})
        for name, task in sorted(resource.body.get("tasks", {}).items()):
            component = components.get(task.get("component", ""), {})
            if component.get("pipeline"):
                continue  # a sub-DAG runs no container of its own
            body = {"image": component.get("image"), "resources": task.get("resources") or {}}
            yield Container(resource, ("tasks", name), body, task.get("tolerations") or (), True, f"task {name}")


def finding(ctx: PolicyContext, container: Container, field: FieldPath, *, got: str, expected: str) -> Diagnostic:
    """A finding on ``container``'s ``field``, at the spec field it was rendered from."""
    resource = container.resource
    spec, path = _origin(ctx.specs, resource, (*container.path, *field))
    if spec is None:
        found = Diagnostic.mismatch("policy", got=got, expected=expected, position=resource.source)
    else:
        found = spec.diagnostic(path, got=f"{container.label}: {got}", expected=expected)
    return dataclasses.replace(found, subject=resource.key)


def _origin(specs: SpecSet, resource: Resource, field: FieldPath) -> tuple[Any, FieldPath]:
    if resource.kind == "InferenceService":
        if field[:3] == ("spec", "predictor", "containers") and field[4:5] != ("image",):
            field = ("spec", "predictor", "model", *field[4:])  # a custom container's fields map like the model's
        for spec in specs.of_kind(DEPLOYMENT):
            if spec.team == resource.scope and resource.name in (spec.name, f"{spec.name}-canary"):
                return spec, spec_path(field)
        return None, ()
    pipeline = specs.named(PIPELINE, resource.name, resource.scope)
    if pipeline is None:
        return None, ()
    steps = getattr(pipeline.spec, "gpu", None) or ()
    gpu = len(field) > 1 and any(step.task == field[1] for step in steps)
    return pipeline, ("spec", "gpu") if gpu else ("spec", "source")


def _security(container: Container) -> Mapping[str, Any]:
    found = container.body.get("securityContext") or {}
    return found if isinstance(found, Mapping) else {}


@rule(
    "SY-WRK-001",
    "Model server containers are not privileged.",
    target=INFERENCE_SERVICE,
    needs_resources=True,
    references=(
        "kube-linter:privileged-container",
        "checkov:CKV_K8S_16",
        "kyverno:disallow-privileged-containers",
    ),
    hint="remove securityContext.privileged: a privileged container is root on the node",
)
def not_privileged(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container in inference_containers(ctx):
        if _security(container).get("privileged") is True:
            yield finding(ctx, container, ("securityContext", "privileged"), got="privileged: true", expected="false")


@rule(
    "SY-WRK-002",
    "Model server containers cannot escalate privileges.",
    target=INFERENCE_SERVICE,
    needs_resources=True,
    references=(
        "kube-linter:privilege-escalation-container",
        "checkov:CKV_K8S_20",
        "kyverno:disallow-privilege-escalation",
    ),
    hint="set securityContext.allowPrivilegeEscalation: false (the models plane renders it)",
)
def no_privilege_escalation(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container in inference_containers(ctx):
        value = _security(container).get("allowPrivilegeEscalation")
        if value is not False:
            got = "allowPrivilegeEscalation unset" if value is None else f"allowPrivilegeEscalation: {value}"
            yield finding(ctx, container, ("securityContext",), got=got, expected="allowPrivilegeEscalation: false")


@rule(
    "SY-WRK-003",
    "Model server containers run as a non-root user.",
    target=INFERENCE_SERVICE,
    needs_resources=True,
    references=(
        "kube-linter:run-as-non-root",
        "checkov:CKV_K8S_23",
        "checkov:CKV_K8S_40",
        "kyverno:require-run-as-nonroot",
    ),
    hint="set securityContext.runAsNonRoot: true and build the image with a numeric non-root USER",
)
def run_as_non_root(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container in inference_containers(ctx):
        security = _security(container)
        if security.get("runAsNonRoot") is not True or security.get("runAsUser") == 0:
            got = f"runAsNonRoot: {security.get('runAsNonRoot')}, runAsUser: {security.get('runAsUser')}"
            yield finding(ctx, container, ("securityContext",), got=got, expected="runAsNonRoot: true, a non-zero user")


# Advisory: the renderer does not set it yet (platform/shipyard/planes/models/render.py renders no
# readOnlyRootFilesystem, and MLflow's server writes to its filesystem). Make it mandatory once it does.
@rule(
    "SY-WRK-004",
    "Model server containers have a read-only root filesystem.",
    target=INFERENCE_SERVICE,
    mandatory=False,
    needs_resources=True,
    references=("kube-linter:no-read-only-root-fs", "checkov:CKV_K8S_22", "kyverno:require-ro-rootfs"),
    hint="set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the server writes",
)
def read_only_root_fs(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container in inference_containers(ctx):
        if _security(container).get("readOnlyRootFilesystem") is not True:
            yield finding(
                ctx,
                container,
                ("securityContext",),
                got="a writable root filesystem",
                expected="readOnlyRootFilesystem: true",
            )


@rule(
    "SY-WRK-005",
    "Model server containers drop all Linux capabilities.",
    target=INFERENCE_SERVICE,
    needs_resources=True,
    references=(
        "kube-linter:drop-net-raw-capability",
        "checkov:CKV_K8S_28",
        "checkov:CKV_K8S_37",
        "kyverno:require-drop-all",
    ),
    hint="set securityContext.capabilities.drop: [ALL] and add back only what the server needs",
)
def drop_all_capabilities(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container in inference_containers(ctx):
        capabilities = _security(container).get("capabilities") or {}
        dropped = {str(c).upper() for c in capabilities.get("drop") or ()}
        added = {str(c).upper() for c in capabilities.get("add") or ()}
        if "ALL" not in dropped or added & {"NET_RAW", "SYS_ADMIN", "ALL"}:
            got = f"drop {sorted(dropped) or 'nothing'}" + (f", add {sorted(added)}" if added else "")
            yield finding(
                ctx, container, ("securityContext", "capabilities"), got=got, expected="drop [ALL], no NET_RAW added"
            )


def _unset_quantities(container: Container) -> list[str]:
    resources = container.body.get("resources") or {}
    missing = []
    for section in ("requests", "limits"):
        for name in ("cpu", "memory"):
            if not (resources.get(section) or {}).get(name):
                missing.append(f"{section}.{name}")
    return missing


@rule(
    "SY-WRK-006",
    "Model servers set CPU and memory requests and limits.",
    target=INFERENCE_SERVICE,
    needs_resources=True,
    references=(
        "kube-linter:unset-cpu-requirements",
        "kube-linter:unset-memory-requirements",
        "checkov:CKV_K8S_10",
        "checkov:CKV_K8S_11",
        "checkov:CKV_K8S_12",
        "checkov:CKV_K8S_13",
        "kyverno:require-pod-requests-limits",
    ),
    hint="set spec.resources.cpu and spec.resources.memory in the ModelDeployment (requests and limits)",
)
def serving_requests_and_limits(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container in inference_containers(ctx):
        missing = _unset_quantities(container)
        if missing:
            yield finding(ctx, container, ("resources",), got=f"no {', '.join(missing)}", expected="all four set")


_KFP_QUANTITIES = {
    "requests.cpu": ("cpuRequest", "resourceCpuRequest"),
    "requests.memory": ("memoryRequest", "resourceMemoryRequest"),
    "limits.cpu": ("cpuLimit", "resourceCpuLimit"),
    "limits.memory": ("memoryLimit", "resourceMemoryLimit"),
}


# Advisory: a task without them still runs, with the defaults of its namespace's LimitRange (the template's
# pipeline sets all four on every task: pipelines/fraud/train/pipeline.py, ``sized``).
@rule(
    "SY-WRK-007",
    "Pipeline tasks set CPU and memory requests and limits.",
    target=PIPELINE_RESOURCE,
    mandatory=False,
    needs_resources=True,
    references=(
        "kube-linter:unset-cpu-requirements",
        "kube-linter:unset-memory-requirements",
        "checkov:CKV_K8S_10",
        "checkov:CKV_K8S_11",
        "checkov:CKV_K8S_12",
        "checkov:CKV_K8S_13",
        "kyverno:require-pod-requests-limits",
    ),
    hint="call .set_cpu_request/.set_cpu_limit/.set_memory_request/.set_memory_limit on each task, then "
    "`shipyard compile`",
)
def task_requests_and_limits(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container in pipeline_tasks(ctx):
        resources = container.body.get("resources") or {}
        missing = [name for name, keys in _KFP_QUANTITIES.items() if not any(resources.get(k) for k in keys)]
        if missing:
            yield finding(ctx, container, ("resources",), got=f"no {', '.join(missing)}", expected="all four set")


def _gpus(container: Container) -> float:
    """The nvidia.com/gpu a container asks for (a model server's limits, a task's accelerator)."""
    resources = container.body.get("resources") or {}
    for section in ("limits", "requests"):
        value = (resources.get(section) or {}).get(GPU_RESOURCE)
        if value:
            return float(value)
    accelerator = resources.get("accelerator") or {}
    kind = accelerator.get("resourceType") or accelerator.get("type")
    count = accelerator.get("resourceCount") or accelerator.get("count")
    return float(count or 0) if kind == GPU_RESOURCE else 0.0


def _tolerates_gpu(container: Container) -> bool:
    return any(t.get("key") == GPU_RESOURCE for t in container.tolerations)


def workloads(ctx: PolicyContext) -> Iterator[Container]:
    yield from inference_containers(ctx)
    yield from pipeline_tasks(ctx)


@rule(
    "SY-WRK-008",
    "A workload that tolerates the GPU taint requests nvidia.com/gpu.",
    target="resource:models/InferenceService, resource:pipelines/Pipeline",
    needs_resources=True,
    references=("kyverno:require-pod-requests-limits",),
    hint="request the GPU (ModelDeployment spec.resources.gpu, Pipeline spec.gpu[].count) or drop the "
    "toleration: a pod on a GPU node without a GPU request blocks the GPU it sits beside",
)
def gpu_toleration_requests_gpu(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container in workloads(ctx):
        if _tolerates_gpu(container) and not _gpus(container):
            yield finding(
                ctx,
                container,
                ("resources",),
                got=f"tolerates {GPU_RESOURCE} with no {GPU_RESOURCE} request",
                expected="a GPU request, or no toleration",
            )


@rule(
    "SY-WRK-009",
    "A workload that requests nvidia.com/gpu tolerates the GPU taint.",
    target="resource:models/InferenceService, resource:pipelines/Pipeline",
    needs_resources=True,
    hint="set the GPU pool (ModelDeployment spec.resources.gpuPool, Pipeline spec.gpu[].pool): the "
    "platform adds the toleration and node selector; without them the pod never schedules",
)
def gpu_request_tolerates(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container in workloads(ctx):
        if _gpus(container) and not _tolerates_gpu(container):
            yield finding(
                ctx,
                container,
                ("tolerations",) if container.resource.kind == "Pipeline" else (),
                got=f"{_gpus(container):g} {GPU_RESOURCE} with no toleration of the GPU taint",
                expected=f"a toleration of {GPU_RESOURCE}",
            )


def _images(ctx: PolicyContext) -> Iterator[tuple[Container, str]]:
    for container in workloads(ctx):
        if container.custom:
            yield container, str(container.body.get("image") or "")


def _tag(image: str) -> str | None:
    """The tag of an image reference, '' for a digest-pinned one, None when untagged."""
    if "@" in image:
        return ""
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


@rule(
    "SY-WRK-010",
    "Images are pinned to a tag other than latest, or to a digest.",
    target="resource:models/InferenceService, resource:pipelines/Pipeline",
    needs_resources=True,
    references=("kube-linter:latest-tag", "checkov:CKV_K8S_14", "kyverno:disallow-latest-tag"),
    hint="pin the image to a release tag or a digest (image:1.2.3 or image@sha256:...): latest moves under "
    "a reviewed plan",
)
def pinned_image(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container, image in _images(ctx):
        tag = _tag(image)
        if not image or tag is None or tag == "latest":
            got = f"image '{image}'" if image else "no image"
            yield finding(ctx, container, ("image",), got=got, expected="a pinned tag or digest")


@rule(
    "SY-WRK-011",
    "Images come from an allowed registry.",
    target="resource:models/InferenceService, resource:pipelines/Pipeline",
    needs_resources=True,
    references=("kyverno:restrict-image-registries",),
    hint="push the image to a registry listed in policies/registries.yaml, or add the registry there in review",
)
def allowed_registry(ctx: PolicyContext) -> Iterator[Diagnostic]:
    registries = allowed_registries()
    for container, image in _images(ctx):
        if not image.startswith(registries):
            yield finding(
                ctx, container, ("image",), got=f"image '{image}'", expected=f"one of {', '.join(registries)}"
            )


# KServe sets no probe of its own on a predictor: in Serverless mode Knative only adds a TCP check of
# the port, which passes before the model is loaded. The models plane renders a readiness probe on
# the model's own ready endpoint for built-in runtimes and custom images alike; this keeps it there.
@rule(
    "SY-WRK-012",
    "Model servers have a readiness probe.",
    target=INFERENCE_SERVICE,
    needs_resources=True,
    references=("kube-linter:no-readiness-probe", "checkov:CKV_K8S_9"),
    hint="the models plane renders readinessProbe on /v2/models/<name>/ready (v1: /v1/models/<name>); keep it "
    "so traffic waits for the model to load",
)
def readiness_probe(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for container in inference_containers(ctx):
        probe = container.body.get("readinessProbe")
        if not isinstance(probe, Mapping) or not probe:
            yield finding(ctx, container, ("readinessProbe",), got="no readiness probe", expected="a readinessProbe")
