"""Services one plane offers another, declared here so that no plane imports another.

A plane offers a service by implementing its protocol; a plane that needs it asks its
context, ``ctx.provider(OnlineFeatures)``, and gets whichever installed plane offers it
(the built-in features plane, or a third-party plane that replaces it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from shipyard.sdk.kinds import Spec, SpecSet
from shipyard.sdk.model import Diagnostic, FieldPath
from shipyard.sdk.planes import DesiredContext, Target


@runtime_checkable
class TrainingInputs(Protocol):
    """Where a team's training run finds its data, as the platform's pipeline parameters."""

    def training_inputs(self, ctx: DesiredContext, target: Target, team: str) -> dict[str, str]:
        """``feature_store`` (Feast repo config, JSON), ``offline_uri`` (the team's offline data) and
        ``data_checks`` (JSON: each check's name, data path and expectations) for ``team`` on ``target``."""
        ...


@runtime_checkable
class OnlineFeatures(Protocol):
    """Feature values as a served model reads them at request time."""

    def online_features(
        self, ctx: DesiredContext, target: Target, team: str, service: str, entity: dict[str, Any]
    ) -> dict[str, Any]:
        """One entity's features from ``team``'s online store through a feature service:
        ``{"features": {name: value or None}, "as_of": newest event time (ISO) or None}``."""
        ...


@runtime_checkable
class TrainedModels(Protocol):
    """The registered models a team's training in this repo produces."""

    def trained_models(self, specs: SpecSet, team: str) -> list[str]:
        """The MLflow registered models ``team``'s pipelines register."""
        ...


@runtime_checkable
class NodePools(Protocol):
    """The cluster's node pools, as the infrastructure declares them."""

    def gpu_pools(self, root: Path) -> dict[str, list[str]] | None:
        """Each GPU node pool's name, with the stacks that declare it; None when the repo declares no stack."""
        ...

    def pool_files(self, root: Path) -> list[str]:
        """The repository-relative files ``gpu_pools`` reads (a unit that checks pools lists them as inputs)."""
        ...


def node_pool_files(ctx: DesiredContext) -> tuple[str, ...]:
    """What ``unknown_gpu_pool`` reads in ``ctx``'s repository: part of the inputs of any unit that calls it."""
    return tuple(f for p in ctx.providers if isinstance(p, NodePools) for f in p.pool_files(ctx.root))


def unknown_gpu_pool(ctx: DesiredContext, spec: Spec, path: FieldPath, pool: str) -> Diagnostic | None:
    """An error at ``path`` when ``pool`` is not a GPU node pool of every stack (None when it is, or
    when no plane knows the pools): a workload must never wait for nodes that do not exist."""
    providers = [p for p in ctx.providers if isinstance(p, NodePools)]
    pools = providers[0].gpu_pools(ctx.root) if providers else None
    if pools is None:
        return None
    every = set().union(*pools.values()) if pools else set()
    if pool in pools and set(pools[pool]) == every:
        return None
    known = ", ".join(f"{name} ({', '.join(stacks)})" for name, stacks in sorted(pools.items())) or "none"
    return spec.diagnostic(
        path,
        got=f"pool '{pool}'" + (f" (only in {', '.join(pools[pool])})" if pool in pools else ""),
        expected=f"a GPU node pool of every stack: {known}",
        hint="name a GPU pool from Pulumi.<stack>.yaml, or add the pool to every stack in review",
    )
