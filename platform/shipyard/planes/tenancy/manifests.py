"""Team specs -> the Kubernetes objects that make a tenant. Pure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shipyard.sdk.kinds import Spec
from shipyard.sdk.kubernetes import MANAGED_BY
from shipyard.sdk.model import Resource
from shipyard.sdk.platform import TeamSpec, namespace_of

PLANE = "tenancy"
GPU_RESOURCE = "requests.nvidia.com/gpu"
#: Container defaults when a pod sets none: small enough to pack, big enough to start.
DEFAULT_REQUEST = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMIT = {"cpu": "1", "memory": "1Gi"}


def team_resources(team: Spec) -> Iterator[Resource]:
    """In apply order: the Namespace first, then what lives in it."""
    spec: TeamSpec = team.spec
    namespace = namespace_of(team)
    labels = {**MANAGED_BY, "shipyard.dev/team": team.name, "shipyard.dev/cost-center": spec.cost_center}

    def make(kind: str, api: str, name: str, body: dict[str, Any], *, path: tuple[str, ...] = ()) -> Resource:
        metadata: dict[str, Any] = {"name": name, "labels": labels}
        if kind != "Namespace":
            metadata["namespace"] = namespace
        manifest = {"apiVersion": api, "kind": kind, "metadata": metadata, **body}
        return Resource(PLANE, kind, team.name, name, manifest, team.position("spec", *path))

    yield Resource(
        PLANE,
        "Namespace",
        team.name,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    **labels,
                    # Pod Security Admission: team workloads run under the restricted profile.
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
                "annotations": {"shipyard.dev/owners": ",".join(spec.owners)},
            },
        },
        team.position("spec", "namespace") if spec.namespace else team.source,
    )
    yield make(
        "ResourceQuota",
        "v1",
        "team-quota",
        {
            "spec": {
                "hard": {
                    "requests.cpu": spec.quota.cpu,
                    "requests.memory": spec.quota.memory,
                    GPU_RESOURCE: str(spec.quota.gpu),
                }
            }
        },
        path=("quota",),
    )
    yield make(
        "LimitRange",
        "v1",
        "team-defaults",
        {"spec": {"limits": [{"type": "Container", "defaultRequest": DEFAULT_REQUEST, "default": DEFAULT_LIMIT}]}},
    )
    yield make(
        "RoleBinding",
        "rbac.authorization.k8s.io/v1",
        "team-edit",
        {
            "subjects": [{"kind": "Group", "name": spec.group, "apiGroup": "rbac.authorization.k8s.io"}],
            "roleRef": {"kind": "ClusterRole", "name": "edit", "apiGroup": "rbac.authorization.k8s.io"},
        },
        path=("group",),
    )
    yield make(
        "NetworkPolicy",
        "networking.k8s.io/v1",
        "default-deny",
        {"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
    )
    yield make(
        "NetworkPolicy",
        "networking.k8s.io/v1",
        "allow-namespace-and-dns",
        {
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
                "egress": [
                    {"to": [{"podSelector": {}}]},
                    {
                        "to": [
                            {
                                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    },
                ],
            }
        },
    )
