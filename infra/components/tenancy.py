"""Tenancy: per team, the namespace and its guardrails (the tenancy plane's own manifests), and an IRSA role
limited to the team's prefixes in the shared buckets."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import Cluster
from components.common import child, tags
from components.iam import bucket_access
from shipyard.planes.tenancy.manifests import team_resources
from shipyard.sdk import Spec
from shipyard.sdk.platform import namespace_of

#: The kinds the tenancy plane renders, as pulumi-kubernetes classes.
KINDS = {
    "Namespace": k8s.core.v1.Namespace,
    "ResourceQuota": k8s.core.v1.ResourceQuota,
    "LimitRange": k8s.core.v1.LimitRange,
    "RoleBinding": k8s.rbac.v1.RoleBinding,
    "NetworkPolicy": k8s.networking.v1.NetworkPolicy,
}
TEAM_PREFIXES = ("datasets", "models", "mlflow")


def _snake(key: str) -> str:
    """A manifest's top-level field (roleRef) as the class's argument (role_ref); nested dicts pass as written."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


@dataclass(frozen=True)
class TenancyArgs:
    teams: list[Spec]
    provider: k8s.Provider
    cluster: Cluster
    bucket_arns: dict[str, pulumi.Output[str]]
    env: str


class Tenancy(pulumi.ComponentResource):
    """Outputs: ``team_roles`` (team → IRSA role ARN for the team's ``workloads`` service account)."""

    def __init__(self, name: str, args: TenancyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipyard:infra:Tenancy", name, None, opts)
        self.team_roles: dict[str, pulumi.Output[str]] = {}
        for team in args.teams:
            namespace = None
            for resource in team_resources(team):
                manifest = resource.body
                made = KINDS[resource.kind](
                    f"{name}-{team.name}-{resource.kind.lower()}-{manifest['metadata']['name']}",
                    metadata=manifest["metadata"],
                    **{_snake(k): v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")},
                    opts=child(self, provider=args.provider, depends_on=[namespace] if namespace else []),
                )
                namespace = namespace or made  # everything else waits for the namespace
            grants = {
                purpose: (f"teams/{team.name}/", True) for purpose in TEAM_PREFIXES if purpose in args.bucket_arns
            }
            role = args.cluster.service_role(
                f"{name}-{team.name}",
                namespace_of(team),
                "workloads",
                tagged=tags(args.env, team.spec.cost_center, team=team.name),
                inline=bucket_access(args.bucket_arns, grants),
                parent=self,
            )
            self.team_roles[team.name] = role.arn
        self.register_outputs({"team_roles": self.team_roles})
