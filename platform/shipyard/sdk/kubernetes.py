"""Conventions shared by planes that manage Kubernetes objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard.sdk.model import FieldPath

#: Fields the API server sets; a diff that ignores them shows only what the repo changes.
SERVER_SET_FIELDS: tuple[FieldPath, ...] = (
    ("metadata", "uid"),
    ("metadata", "resourceVersion"),
    ("metadata", "generation"),
    ("metadata", "creationTimestamp"),
    ("metadata", "managedFields"),
    ("metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"),
    ("status",),
)

#: Label every object Shipyard creates carries, so drift checks find strays.
MANAGED_BY = {"app.kubernetes.io/managed-by": "shipyard"}

#: GPU node pools (infra plane) carry this taint and name themselves with POOL_LABEL; a workload
#: that needs a GPU tolerates the taint and selects its pool by the label.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
POOL_LABEL = "shipyard.dev/pool"


def is_object(body: Mapping[str, Any]) -> bool:
    """Whether a Resource's ``body`` is a Kubernetes object as applied: ``apiVersion``, ``kind`` and
    ``metadata.name``, as the tenancy plane's Namespace or the models plane's InferenceService.

    ``shipyard render`` writes exactly these as manifests; a body that is not one (a model alias,
    a compiled pipeline, a Pulumi resource's inputs) is something only Shipyard's appliers make true.
    """
    metadata = body.get("metadata")
    return (
        isinstance(body.get("apiVersion"), str)
        and isinstance(body.get("kind"), str)
        and isinstance(metadata, Mapping)
        and isinstance(metadata.get("name"), str)
    )
