"""Rendered manifests checked against the real InferenceService CRD schema, errors pointed back at the spec.

The CRD's ``openAPIV3Schema`` is vendored in ``schemas/`` (see its README). It is
applied strictly, as ``kubeconform -strict`` does: an API server silently prunes
fields a schema does not know, so an unknown field here is a mistake to report, not
to lose. ``metadata`` is checked with the core ObjectMeta rules (the CRD leaves it open).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

from shipyard.sdk.model import FieldPath

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
#: Where in a ModelDeployment each part of the rendered predictor comes from.
SPEC_PATHS: tuple[tuple[tuple[str, ...], FieldPath], ...] = (
    (("metadata", "name"), ("metadata", "name")),
    (("spec", "predictor", "minReplicas"), ("spec", "replicas", "min")),
    (("spec", "predictor", "maxReplicas"), ("spec", "replicas", "max")),
    (("spec", "predictor", "scaleMetric"), ("spec", "autoscaling", "metric")),
    (("spec", "predictor", "scaleTarget"), ("spec", "autoscaling", "target")),
    (("spec", "predictor", "canaryTrafficPercent"), ("spec", "canary", "percent")),
    (("spec", "predictor", "tolerations"), ("spec", "resources", "gpuPool")),
    (("spec", "predictor", "nodeSelector"), ("spec", "resources", "gpuPool")),
    (("spec", "predictor", "model", "resources"), ("spec", "resources")),
    (("spec", "predictor", "model", "modelFormat"), ("spec", "runtime")),
    (("spec", "predictor", "model", "protocolVersion"), ("spec", "protocol")),
    (("spec", "predictor", "model", "storageUri"), ("spec", "serve")),
    (("spec", "predictor", "containers"), ("spec", "image")),
)


@functools.cache
def _validator() -> Any:
    import jsonschema

    packed = resources.files("shipyard.planes.models").joinpath("schemas/inferenceservice-v1beta1.json.gz")
    schema = _strict(json.loads(gzip.decompress(packed.read_bytes())))
    return jsonschema.Draft7Validator(schema)


def _strict(schema: Any) -> Any:
    """Refuse unknown fields wherever the schema lists its fields and does not keep unknown ones."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    keeps_unknown = out.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in out
    if "properties" in out and not keeps_unknown:
        out["additionalProperties"] = False
    return out


def spec_path(manifest_path: tuple[str | int, ...]) -> FieldPath:
    """The ModelDeployment field a manifest field was rendered from (the spec itself when unknown)."""
    for prefix, path in SPEC_PATHS:
        if tuple(manifest_path[: len(prefix)]) == prefix:
            return path
    return ("spec",)


def problems(manifest: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """``(path in the manifest, message)`` for everything the API server would refuse or drop."""
    metadata = manifest.get("metadata", {})
    name = metadata.get("name", "")
    if not DNS_LABEL.match(name) or len(name) > 63:
        yield ("metadata", "name"), f"'{name}' is not a DNS-1123 label (lowercase letters, digits, '-'; up to 63)"
    for key, value in (metadata.get("labels") or {}).items():
        if len(value) > 63 or not LABEL_VALUE.match(value):
            yield ("metadata", "labels", key), f"label value '{value}' is not a valid Kubernetes label value"
    if manifest.get("kind") != "InferenceService":
        return
    for error in sorted(_validator().iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path))):
        yield tuple(error.absolute_path), error.message
