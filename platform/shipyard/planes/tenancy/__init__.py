"""Tenancy plane: each Team becomes a namespace with quota, limits, RBAC and network isolation.

Local target: the rendered manifests are kept in ``.shipyard/local/tenancy/``.
Cloud targets observe and apply through the Kubernetes API (the infra issue).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from shipyard.planes.tenancy.environment import ENVIRONMENT
from shipyard.planes.tenancy.manifests import PLANE, team_resources
from shipyard.planes.tenancy.policies import POLICIES
from shipyard.planes.tenancy.spec import TeamSpec
from shipyard.sdk import Action, Change, DesiredContext, FieldPath, Kind, Plane, Policy, Resource, Target, hookimpl
from shipyard.sdk.kubernetes import SERVER_SET_FIELDS
from shipyard.sdk.store import ResourceStore

TEAM = Kind(
    "Team",
    TeamSpec,
    globs=("platform/teams/*.yaml", "platform/teams/*.yml"),
    description="A tenant of the platform: owners, namespace, quotas and budget.",
    team_scoped=False,
)
KINDS = ("Namespace", "ResourceQuota", "LimitRange", "RoleBinding", "NetworkPolicy")


class TenancyPlane(Plane):
    name = PLANE
    order = 20
    ignored_fields: ClassVar[Mapping[str, Sequence[FieldPath]]] = dict.fromkeys(KINDS, SERVER_SET_FIELDS)

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        for team in ctx.specs.of_kind(TEAM.name):
            yield from team_resources(team)

    def observe(self, target: Target) -> Iterable[Resource]:
        if target.is_local:
            return list(self._store(target))
        return super().observe(target)

    def apply(self, change: Change, target: Target) -> None:
        if not target.is_local:
            super().apply(change, target)  # refuses: the Kubernetes adapter comes with the infra plane
            return
        if change.action is Action.DELETE:
            self._store(target).delete(change.key)
        elif change.desired is not None:
            self._store(target).put(change.desired)

    @staticmethod
    def _store(target: Target) -> ResourceStore:
        return ResourceStore(target.state_dir / PLANE)


@hookimpl
def shipyard_kinds() -> list[Kind]:
    return [TEAM, ENVIRONMENT]


@hookimpl
def shipyard_planes() -> list[Plane]:
    return [TenancyPlane()]


@hookimpl
def shipyard_policies() -> list[Policy]:
    return list(POLICIES)
