"""A ModelDeployment as Kubernetes manifests: a KServe v1beta1 InferenceService (and, for a canary in
Standard mode, a second one with a Gateway API route splitting traffic between them).

Built with KServe's own client models and serialized the way the Kubernetes client
sends them (camelCase, no nulls). Pure: the storage URI and version come in resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.planes.models.spec import ModelDeploymentSpec
from shipyard.sdk.kubernetes import GPU_RESOURCE, GPU_TAINT, MANAGED_BY, POOL_LABEL

API_VERSION = "serving.kserve.io/v1beta1"
#: KServe's Gateway API gateway (its default install); the Standard-mode canary routes through it.
GATEWAY = {"name": "kserve-ingress-gateway", "namespace": "kserve"}


@dataclass(frozen=True)
class Serving:
    """What the alias resolves to in the environment being rendered."""

    version: int | None  # None when unresolved (a plan from git alone)
    storage_uri: str


def _mode(spec: ModelDeploymentSpec) -> str:
    # KServe's annotation still spells Standard mode "RawDeployment".
    return "RawDeployment" if spec.mode == "Standard" else spec.mode


def inference_service(
    spec: ModelDeploymentSpec,
    name: str,
    team: str,
    namespace: str,
    serving: Serving,
    *,
    canary_percent: int | None = None,
) -> dict[str, Any]:
    """The InferenceService serving ``serving``; ``canary_percent`` sends only that share to it (Serverless)."""
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes.client import (
        ApiClient,
        V1Capabilities,
        V1Container,
        V1EnvVar,
        V1HTTPGetAction,
        V1ObjectMeta,
        V1Probe,
        V1ResourceRequirements,
        V1SeccompProfile,
        V1SecurityContext,
        V1Toleration,
    )

    quantities: dict[str, Any] = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    if spec.resources.gpu:
        quantities[GPU_RESOURCE] = str(spec.resources.gpu)
    resources = V1ResourceRequirements(requests=dict(quantities), limits=dict(quantities))
    ready_path = f"/v2/models/{name}/ready" if spec.protocol == "v2" else f"/v1/models/{name}"
    probe = V1Probe(http_get=V1HTTPGetAction(path=ready_path, port=8080), period_seconds=10, failure_threshold=3)
    # The team namespace enforces the restricted Pod Security standard.
    security = V1SecurityContext(
        run_as_non_root=True,
        allow_privilege_escalation=False,
        capabilities=V1Capabilities(drop=["ALL"]),
        seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
    )
    predictor: dict[str, Any] = {
        "min_replicas": spec.replicas.min,
        "max_replicas": spec.replicas.max,
        "scale_metric": spec.autoscaling.metric,
        "scale_target": spec.autoscaling.target,
    }
    if spec.runtime == "custom":
        predictor["containers"] = [
            V1Container(
                name="kserve-container",
                image=spec.image,
                env=[V1EnvVar(name="STORAGE_URI", value=serving.storage_uri)],
                resources=resources,
                readiness_probe=probe,
                security_context=security,
            )
        ]
    else:
        predictor["model"] = V1beta1ModelSpec(
            model_format=V1beta1ModelFormat(name=spec.runtime),
            protocol_version=spec.protocol,
            storage_uri=serving.storage_uri,
            resources=resources,
            readiness_probe=probe,
            security_context=security,
        )
    if spec.resources.gpu:
        predictor["tolerations"] = [V1Toleration(**GPU_TAINT)]
        predictor["node_selector"] = {POOL_LABEL: spec.resources.gpu_pool}
    if canary_percent is not None:
        predictor["canary_traffic_percent"] = canary_percent
    labels = {**MANAGED_BY, "shipyard.dev/team": team, "shipyard.dev/model": spec.registered_model}
    annotations = {"serving.kserve.io/deploymentMode": _mode(spec)}
    if serving.version is not None:
        labels["shipyard.dev/model-version"] = str(serving.version)
    service = V1beta1InferenceService(
        api_version=API_VERSION,
        kind="InferenceService",
        metadata=V1ObjectMeta(name=name, namespace=namespace, labels=labels, annotations=annotations),
        spec=V1beta1InferenceServiceSpec(predictor=V1beta1PredictorSpec(**predictor)),
    )
    rendered: dict[str, Any] = ApiClient().sanitize_for_serialization(service)
    return rendered


def standard_canary(
    spec: ModelDeploymentSpec, name: str, team: str, namespace: str, serving: Serving, percent: int
) -> list[dict[str, Any]]:
    """Standard (raw) mode has no canaryTrafficPercent: a second InferenceService and a weighted route."""
    canary = inference_service(spec, f"{name}-canary", team, namespace, serving)
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"{name}-split", "namespace": namespace, "labels": canary["metadata"]["labels"]},
        "spec": {
            "parentRefs": [GATEWAY],
            "rules": [
                {
                    "backendRefs": [
                        {"name": f"{name}-predictor", "port": 80, "weight": 100 - percent},
                        {"name": f"{name}-canary-predictor", "port": 80, "weight": percent},
                    ]
                }
            ],
        },
    }
    return [canary, route]
