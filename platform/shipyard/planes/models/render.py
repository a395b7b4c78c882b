"""A ModelDeployment as Kubernetes manifests: a KServe v1beta1 InferenceService (and, for a canary in
Standard mode, a second one with a Gateway API route splitting traffic between them).

Written as the plain data KServe's own client models serialize to (camelCase, no nulls;
``tests/test_models.py`` checks they agree), so planning never imports KServe and its
server stack (seconds per plan); the models plane's check validates every manifest against
the InferenceService CRD's schema. Pure: the storage URI and version come in resolved.
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
    quantities: dict[str, Any] = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    if spec.resources.gpu:
        quantities[GPU_RESOURCE] = str(spec.resources.gpu)
    ready_path = f"/v2/models/{name}/ready" if spec.protocol == "v2" else f"/v1/models/{name}"
    serves = {
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
        "readinessProbe": {"httpGet": {"path": ready_path, "port": 8080}, "periodSeconds": 10, "failureThreshold": 3},
        # The team namespace enforces the restricted Pod Security standard.
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    predictor: dict[str, Any] = {
        "minReplicas": spec.replicas.min,
        "maxReplicas": spec.replicas.max,
        "scaleMetric": spec.autoscaling.metric,
        "scaleTarget": spec.autoscaling.target,
    }
    if spec.runtime == "custom":
        env = [{"name": "STORAGE_URI", "value": serving.storage_uri}]
        predictor["containers"] = [{"name": "kserve-container", "image": spec.image, "env": env, **serves}]
    else:
        # KServe's client sends the container name of a model spec as "" (its default): kept, so what is
        # applied, and every plan's body, stays exactly what it was.
        model = {"modelFormat": {"name": spec.runtime}, "name": "", "protocolVersion": spec.protocol}
        predictor["model"] = model | {"storageUri": serving.storage_uri, **serves}
    if spec.resources.gpu:
        predictor["tolerations"] = [dict(GPU_TAINT)]
        predictor["nodeSelector"] = {POOL_LABEL: spec.resources.gpu_pool}
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    labels = {**MANAGED_BY, "shipyard.dev/team": team, "shipyard.dev/model": spec.registered_model}
    annotations = {"serving.kserve.io/deploymentMode": _mode(spec)}
    if serving.version is not None:
        labels["shipyard.dev/model-version"] = str(serving.version)
    metadata = {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations}
    manifest = {"apiVersion": API_VERSION, "kind": "InferenceService", "metadata": metadata}
    return manifest | {"spec": {"predictor": _without_none(predictor)}}


def _without_none(value: Any) -> Any:
    """As the Kubernetes client sends an object: no field that is not set."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


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
