"""Features plane: each team's Feast project, the Great Expectations checks on its data, and materialization.

- ``features/stores/<env>.yaml`` (kind ``FeatureStore``): where an environment keeps
  offline data, the online store and the registry.
- ``features/<team>/``: the team's Feast definitions, one Feast project per team.
- ``features/<team>/checks/*.yaml`` (kind ``DataCheck``): expectations on the data.

Desired state comes from Feast itself (the repo parsed and planned by
``FeatureStore.plan`` in a worker process); the local target is observed from its
Feast registry and applied with Feast's apply. On the local target, apply also
materializes each view over an explicit window ending at the newest event in its
data, after the view's checks pass on all of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from shipyard.planes.features.checks_report import DataCheckFailed, check_findings
from shipyard.planes.features.config import offline_uri, repo_config
from shipyard.planes.features.spec import DataCheckSpec, FeatureStoreSpec
from shipyard.sdk import (
    Action,
    Change,
    DesiredContext,
    Diagnostic,
    FieldPath,
    Kind,
    Plane,
    Readings,
    Resource,
    Spec,
    SpecSet,
    Target,
    UserError,
    content_digest,
    hookimpl,
)
from shipyard.sdk.store import ResourceStore
from shipyard.sdk.worker import Worker

PLANE = "features"
FEATURE_STORE = Kind(
    "FeatureStore",
    FeatureStoreSpec,
    globs=("features/stores/*.yaml",),
    description="Where one environment keeps features: offline store, online store, registry.",
    team_scoped=False,
)
DATA_CHECK = Kind(
    "DataCheck",
    DataCheckSpec,
    globs=("features/*/checks/*.yaml",),
    description="Great Expectations checks on the data behind a team's features.",
)
REGISTRY_KINDS = frozenset(
    {"Entity", "DataSource", "FeatureView", "OnDemandFeatureView", "StreamFeatureView", "FeatureService", "OnlineTable"}
)


def key(team: str, kind: str, name: str) -> str:
    return f"{PLANE}/{team}/{kind}/{name}"


class FeaturesPlane(Plane):
    name = PLANE
    order = 30
    # Feast's registry keeps the source's class in its own field, not in the stored spec (and
    # its full apply, used for cloud stores, drops it from a view's embedded source too).
    ignored_fields: ClassVar[Mapping[str, Sequence[FieldPath]]] = {
        "DataSource": (("data_source_class_type",),),
        "FeatureView": (("batch_source", "data_source_class_type"),),
    }

    def __init__(self) -> None:
        self.worker = Worker("shipyard.planes.features.tasks")
        self._seen: Readings[_Seen] = Readings(PLANE)  # what desired read, for check/observe/apply

    def warm_up(self, root: Path) -> None:
        if (root / PLANE).is_dir():
            self.worker.start()

    # -- reading the repo -------------------------------------------------------------------------

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        seen = self._read(ctx)
        for team, found in seen.teams.items():
            for obj in found["objects"]:
                yield Resource(PLANE, obj["kind"], key(team, obj["kind"], obj["name"]), obj["body"])
            if ctx.environment != "local":
                # A cloud environment holds only Feast's registry; checks travel with the
                # pipelines that run them, and its own jobs materialize.
                continue
            for check in seen.checks_of(team):
                body = check.spec.model_dump(mode="json", by_alias=True)
                yield Resource(PLANE, "DataCheck", key(team, "DataCheck", check.name), body, check.source)
            if ctx.live:
                yield from self._materializations(seen, team, found)

    def _read(self, ctx: DesiredContext) -> _Seen:
        cached = self._seen.get(ctx)
        if cached is not None:
            return cached
        teams = [t.name for t in ctx.specs.of_kind("Team") if (ctx.root / PLANE / t.name).is_dir()]
        if not teams and not ctx.specs.of_kind(DATA_CHECK.name):
            return self._seen.put(ctx, _Seen(ctx, None, {}))
        store = feature_store(ctx.specs, ctx.environment)
        settings = {
            team: {"config": repo_config(store, team, ctx.root), "offline": offline_uri(store, team)} for team in teams
        }
        found = self.worker.call("desired", root=str(ctx.root), teams=settings, infra=ctx.environment == "local")
        seen = _Seen(ctx, store, found)
        if ctx.environment == "local":
            uris = {
                f"{team}/{view}": found[team]["sources"][source]
                for team in teams
                for view, source in found[team]["views"].items()
                if source in found[team]["sources"]
            }
            seen.newest = self.worker.call("newest", uris=uris, root=str(ctx.root))
        return self._seen.put(ctx, seen)

    def _materializations(self, seen: _Seen, team: str, found: dict[str, Any]) -> Iterator[Resource]:
        lookback = timedelta(days=seen.store.materialization.lookback_days)
        views = {
            o["name"]: o["body"] for o in found["objects"] if o["kind"] == "FeatureView" and o["body"].get("online")
        }
        for view, body in sorted(views.items()):
            newest = seen.newest.get(f"{team}/{view}")
            if newest is None:
                continue  # no data yet: check() says so
            end = datetime.fromisoformat(newest)
            window = {"featureView": view, "start": (end - lookback).isoformat(), "end": end.isoformat()}
            # A changed view is materialized again, even over the same window.
            yield Resource(
                PLANE, "Materialization", key(team, "Materialization", view), window | {"view": content_digest(body)}
            )

    def check(self, ctx: DesiredContext) -> Iterable[Diagnostic]:
        """Each DataCheck on a sample of its data, where this machine can read the data."""
        seen = self._read(ctx)
        for team in seen.teams:
            for check in seen.checks_of(team):
                views = {o["name"] for o in seen.teams[team]["objects"] if o["kind"] == "FeatureView"}
                for index, view in enumerate(check.spec.feature_views):
                    if view not in views:
                        yield check.diagnostic(
                            ("spec", "featureViews", index),
                            got=f"'{view}'",
                            expected=f"a feature view of features/{team}: {', '.join(sorted(views)) or 'none'}",
                        )
                path = data_path(seen.root, seen.store, team, check.spec)
                if "://" in path:
                    continue  # cloud data is checked by the environment's own jobs, not from a laptop
                result = self.worker.call(
                    "check", path=path, expectations=expectations(check), sample_rows=check.spec.sample_rows
                )
                yield from check_findings(check, path, result, sampled=True)

    # -- targets ----------------------------------------------------------------------------------

    def observe(self, target: Target) -> Iterable[Resource]:
        _, seen = self._seen.of(target)
        if not target.is_local:
            # Every declared team's registry: a cloud registry is not listed, so a team whose whole
            # feature repo was removed is left for its owners to delete.
            configs = {team: repo_config(seen.store, team, target.root) for team in seen.teams}
            return self._observed(configs, infra=False)
        if seen.declared is None:
            return list(_records(target))
        configs = {
            team: repo_config(seen.store, team, target.root) for team in _registered_teams(target.root, seen.store)
        }
        return self._observed(configs, infra=True) + list(_records(target))

    def _observed(self, configs: dict[str, dict[str, Any]], infra: bool) -> list[Resource]:
        found = self.worker.call("observe", teams=configs, infra=infra) if configs else {}
        return [
            Resource(PLANE, o["kind"], key(team, o["kind"], o["name"]), o["body"])
            for team, objects in found.items()
            for o in objects
        ]

    def apply(self, change: Change, target: Target) -> None:
        _, team, kind, _name = change.key.split("/", 3)
        _, seen = self._seen.of(target)
        if kind in REGISTRY_KINDS:
            # Feast applies a team's whole project at once; repeating it for the project's
            # other changes finds nothing left to do.
            config = repo_config(seen.store, team, target.root)
            self.worker.call(
                "apply", root=str(target.root), team=team, config=config, offline=offline_uri(seen.store, team)
            )
        elif change.action is Action.DELETE:
            _records(target).delete(change.key)
        elif change.desired is not None and kind == "DataCheck":
            _records(target).put(change.desired)
        elif change.desired is not None and kind == "Materialization":
            self._materialize(seen, team, change.desired, target)

    def online(self, root: Path, specs: SpecSet, team: str, service: str, entity: dict[str, Any]) -> dict[str, Any]:
        """One entity's features from the team's local online store, as a served model reads them.

        ``{"features": {name: value or None}, "as_of": newest event time (ISO) or None}``.
        """
        config = repo_config(feature_store(specs, "local"), team, root)
        found: dict[str, Any] = self.worker.call("online", config=config, service=service, entity=entity)
        return found

    def _materialize(self, seen: _Seen, team: str, window: Resource, target: Target) -> None:
        view = window.body["featureView"]
        failures: list[Diagnostic] = []
        for check in (c for c in seen.checks_of(team) if view in c.spec.feature_views):
            path = data_path(target.root, seen.store, team, check.spec)
            result = self.worker.call("check", path=path, expectations=expectations(check), sample_rows=None)
            failures += check_findings(check, path, result, sampled=False)
        if failures:
            raise DataCheckFailed(failures, f"{team}/{view} was not materialized")
        self.worker.call(
            "materialize",
            team=team,
            config=repo_config(seen.store, team, target.root),
            views=[view],
            start=window.body["start"],
            end=window.body["end"],
        )
        _records(target).put(window)


class _Seen:
    """One reading of the repo for an environment: specs, store config and what Feast found."""

    def __init__(self, ctx: DesiredContext, store: FeatureStoreSpec | None, teams: dict[str, Any]) -> None:
        self.specs = ctx.specs
        self.root = ctx.root
        self.declared = store
        self.teams = teams
        self.newest: dict[str, str | None] = {}

    @property
    def store(self) -> FeatureStoreSpec:
        if self.declared is None:  # only a repo without feature repos or checks gets here without one
            raise UserError("no feature store is declared", hint="add features/stores/<env>.yaml (kind: FeatureStore)")
        return self.declared

    def checks_of(self, team: str) -> list[Spec]:
        return [c for c in self.specs.of_kind(DATA_CHECK.name) if c.team == team]


def feature_store(specs: SpecSet, environment: str) -> FeatureStoreSpec:
    """The FeatureStore spec declared for ``environment``."""
    hint = f"add features/stores/{environment}.yaml (kind: FeatureStore)"
    store: FeatureStoreSpec = specs.require(FEATURE_STORE.name, environment, hint=hint).spec
    return store


def data_path(root: Path, store: FeatureStoreSpec, team: str, check: DataCheckSpec) -> str:
    """The file a check reads, in the environment's offline store (anchored at the repo when local)."""
    uri = f"{offline_uri(store, team)}/{check.path}"
    return uri if "://" in uri else str(root / uri)


def _registered_teams(root: Path, store: FeatureStoreSpec) -> list[str]:
    """Teams with a local registry file: also those whose features were removed from the repo."""
    pattern = store.registry.path
    if store.registry.type != "file" or "://" in pattern:
        return []
    prefix = pattern.split("{team}", 1)[0]
    return sorted(
        p.relative_to(root / prefix).parts[0] for p in root.glob(pattern.replace("{team}", "*")) if p.is_file()
    )


def _records(target: Target) -> ResourceStore:
    """What the local target holds beside Feast's registry: applied checks and materialized windows."""
    return ResourceStore(target.state_dir / PLANE)


def expectations(check: Spec) -> list[dict[str, Any]]:
    """A DataCheck's expectations as the check task (and the training pipeline's gate) takes them."""
    spec: DataCheckSpec = check.spec
    return [e.model_dump(mode="json", by_alias=True) for e in spec.expectations]


@hookimpl
def shipyard_kinds() -> list[Kind]:
    return [FEATURE_STORE, DATA_CHECK]


@hookimpl
def shipyard_planes() -> list[Plane]:
    return [FeaturesPlane()]
