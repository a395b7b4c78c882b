"""Tenancy plane: each Team becomes a namespace with quota, limits, RBAC and network isolation.

It registers the platform's shared kinds, ``Team`` and ``Environment`` (their models and
lookups live in ``shipyard.sdk.platform``, where every plane reads them).

Local target: the rendered manifests are kept in ``.shipyard/local/tenancy/``.
Cloud targets observe and apply through the Kubernetes API (the infra issue).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from shipyard.planes.tenancy.manifests import PLANE, team_resources
from shipyard.planes.tenancy.policies import POLICIES
from shipyard.sdk import (
    Action,
    Applier,
    Change,
    DesiredContext,
    FieldPath,
    Kind,
    Plane,
    Policy,
    Resource,
    Target,
    hookimpl,
)
from shipyard.sdk.kubernetes import SERVER_SET_FIELDS
from shipyard.sdk.platform import ENVIRONMENT, TEAM
from shipyard.sdk.store import ResourceStore

KINDS = ("Namespace", "ResourceQuota", "LimitRange", "RoleBinding", "NetworkPolicy")


class TenancyPlane(Plane):
    name = PLANE
    order = 20
    ignored_fields: ClassVar[Mapping[str, Sequence[FieldPath]]] = dict.fromkeys(KINDS, SERVER_SET_FIELDS)

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        for team in ctx.specs.of_kind(TEAM.name):
            yield from team_resources(team)

    def observe(self, ctx: DesiredContext, target: Target) -> Iterable[Resource]:
        if target.is_local:
            return list(_store(target))
        return super().observe(ctx, target)

    def appliers(self, target: Target) -> Mapping[str, Applier]:
        # Cloud targets: the Kubernetes adapter comes with the infra plane's cluster.
        return dict.fromkeys(KINDS, _keep_locally) if target.is_local else {}


def _keep_locally(change: Change, ctx: DesiredContext, target: Target) -> None:
    if change.action is Action.DELETE:
        _store(target).delete(change.key)
    elif change.desired is not None:
        _store(target).put(change.desired)


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
