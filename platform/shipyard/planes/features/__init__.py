"""Features plane: each team's Feast project, the Great Expectations checks on its data, and materialization.

- ``features/stores/<env>.yaml`` (kind ``FeatureStore``): where an environment keeps
  offline data, the online store and the registry.
- ``features/<team>/``: the team's Feast definitions, one Feast project per team.
- ``features/<team>/checks/*.yaml`` (kind ``DataCheck``): expectations on the data.

Desired state comes from Feast itself (the repo parsed and planned by
``FeatureStore.plan`` in a worker process); the local target is observed from its
Feast registry and applied with Feast's apply.

Two workers. Reading the team's definitions (``features/<team>/*.py`` is team code, on
a pull request the PR author's) and checking local data happen during plan in one
started with a scrubbed environment (``Worker(..., scrubbed=True)``), which no credential
or token reaches; registry reads, Feast's apply, materialization and online reads go to
one with the full environment, started only for a plan that observes a registry
(``pin``) or when first asked.

On the local target, apply also materializes each view over an explicit window ending
at the newest event in its data (a fact pinned into the plan), after the view's checks
pass on all of it.

The plane offers two SDK services: ``TrainingInputs`` (where a team's training run finds
its data) and ``OnlineFeatures`` (a served model's features, for ``up``'s smoke request).

Each team's folder is also a plain Feast repository for the local environment: ``prepare``
(``shipyard up``) and ``shipyard features init`` write its git-ignored ``feature_store.yaml``
(``localrepo.py``), which the plane never reads and leaves out of its units' inputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from shipyard.planes.features.checks_report import DataCheckFailed, check_findings
from shipyard.planes.features.config import offline_uri, repo_config
from shipyard.planes.features.spec import DataCheckSpec, FeatureStoreSpec
from shipyard.sdk import (
    Action,
    Applier,
    Change,
    DesiredContext,
    Diagnostic,
    Facts,
    FieldPath,
    Kind,
    Plane,
    Resource,
    Spec,
    SpecError,
    SpecSet,
    Target,
    Unit,
    content_digest,
    hookimpl,
)
from shipyard.sdk.cache import SKIPPED
from shipyard.sdk.featurerepo import REPO_CONFIG
from shipyard.sdk.files import links_under
from shipyard.sdk.platform import TEAM, team_file
from shipyard.sdk.store import ResourceStore
from shipyard.sdk.worker import Worker

PLANE = "features"
#: The one expectation that reads the clock.
FRESH = "fresh"
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


class FeaturesPlane(Plane):
    name = PLANE
    order = 30
    libraries = ("feast", "great-expectations", "pyarrow", "pandas")
    # Feast's registry keeps the source's class in its own field, not in the stored spec (and
    # its full apply, used for cloud stores, drops it from a view's embedded source too).
    ignored_fields: ClassVar[Mapping[str, Sequence[FieldPath]]] = {
        "DataSource": (("data_source_class_type",),),
        "FeatureView": (("batch_source", "data_source_class_type"),),
    }

    def __init__(self) -> None:
        #: Runs team code (the Feast definitions) and the data checks: no credentials reach it.
        self.team_worker = Worker("shipyard.planes.features.tasks", scrubbed=True)
        #: Reads and writes registries and online stores, with the engine's credentials.
        self.worker = Worker("shipyard.planes.features.tasks")

    def warm_up(self, root: Path) -> None:
        if (root / PLANE).is_dir():
            self.team_worker.start()

    # -- pin and desired --------------------------------------------------------------------------

    def pin(self, ctx: DesiredContext, target: Target) -> Facts:
        """The newest event in each online view's local data: where its materialization window ends."""
        if self._observes_registries(ctx, target):
            self.worker.start()  # observe reads them: the worker imports Feast while desired is computed
        if not target.is_local:
            return {}
        found = self._parse(ctx)
        uris = {
            f"{team}/{view}": parsed["sources"][source]
            for team, parsed in found.items()
            for view, source in parsed["views"].items()
            if source in parsed["sources"]
        }
        newest: dict[str, str | None] = self.team_worker.call("newest", uris=uris, root=str(ctx.root)) if uris else {}
        return {"newest": dict(sorted(newest.items()))}

    def units(self, ctx: DesiredContext) -> Sequence[Unit]:
        """One per team with features or checks: its folder, its Team spec, the environment's store and, for a
        live plan, the data its checks read and the newest events pinned for its views."""
        stores = ctx.specs.named(FEATURE_STORE.name, ctx.environment)
        shared = () if stores is None else (stores.source.file,)
        teams = set(_teams(ctx)) | {str(c.team) for c in ctx.specs.of_kind(DATA_CHECK.name)}
        found = []
        for team in sorted(teams):
            paths = [*team_inputs(ctx.root, team), *team_file(ctx.specs, team), *shared]
            paths += (c.source.file for c in checks_of(ctx.specs, team))
            facts, volatile = None, False
            if ctx.live:
                paths += _local_data(ctx, team)
                facts = {k: v for k, v in ctx.facts.get("newest", {}).items() if k.startswith(f"{team}/")}
                # A freshness expectation reads the clock: checked on every plan (the rest is kept by ``check``).
                volatile = any(e["expect"] == FRESH for c in checks_of(ctx.specs, team) for e in expectations(c))
            found.append(Unit(team, tuple(paths), facts, volatile))
        return found

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        found = self._parse(ctx)
        resources = []
        for team, parsed in found.items():
            resources += [Resource(PLANE, o["kind"], team, o["name"], o["body"]) for o in parsed["objects"]]
            if ctx.environment != "local":
                # A cloud environment holds only Feast's registry; checks travel with the
                # pipelines that run them, and its own jobs materialize.
                continue
            for check in checks_of(ctx.specs, team):
                body = check.spec.model_dump(mode="json", by_alias=True)
                resources.append(Resource(PLANE, "DataCheck", team, check.name, body, check.source))
            if ctx.live:
                resources += _materializations(ctx, team, parsed["objects"])
        return resources

    def _parse(self, ctx: DesiredContext) -> dict[str, Any]:
        """Each team's Feast objects (and file sources, and views' sources), read by Feast in the worker."""
        teams = [team for team in _teams(ctx) if ctx.wants(team)]
        if not teams:
            return {}
        # Feast reads the whole folder: a link in it could make it echo any file.
        links = [d for team in teams for d in links_under(ctx.root, ctx.root / PLANE / team)]
        if links:
            raise SpecError(links)
        store = feature_store(ctx.specs, ctx.environment)
        settings = {
            team: {"config": repo_config(store, team, ctx.root), "offline": offline_uri(store, team)} for team in teams
        }
        infra = ctx.environment == "local"
        if not ctx.live or ctx.cache is None:
            found: dict[str, Any] = self.team_worker.call("desired", root=str(ctx.root), teams=settings, infra=infra)
            return found
        # A live plan (apply, up) parses the same folders each time: Feast's answer is kept by their digest.
        digests = {
            team: ctx.cache.digest(ctx.root, team_inputs(ctx.root, team), [str(ctx.root), settings[team], infra])
            for team in teams
        }
        kept = {team: ctx.cache.get("features/parse", digest) for team, digest in digests.items()}
        missing = {team: settings[team] for team, value in kept.items() if value is None}
        if missing:
            fresh = self.team_worker.call("desired", root=str(ctx.root), teams=missing, infra=infra)
            for team, value in fresh.items():
                ctx.cache.put("features/parse", digests[team], value)
                kept[team] = value
        return kept

    def check(self, ctx: DesiredContext, resources: Sequence[Resource]) -> Iterable[Diagnostic]:
        """Each DataCheck names views its team declares, and holds on a sample of its data where it is readable.

        The data is the target's: a plan from git alone (a pull request's, ``base:<rev>``) reads none, as
        whatever a laptop or runner has under ``.shipyard/`` says nothing about the change under review.
        """
        checks = ctx.specs.of_kind(DATA_CHECK.name)
        if not checks:
            return
        store = feature_store(ctx.specs, ctx.environment)
        for check in filter(lambda c: ctx.wants(c.team), checks):
            team = str(check.team)
            views = {r.name for r in resources if r.kind == "FeatureView" and r.scope == team}
            for index, view in enumerate(check.spec.feature_views):
                if view not in views:
                    yield check.diagnostic(
                        ("spec", "featureViews", index),
                        got=f"'{view}'",
                        expected=f"a feature view of features/{team}: {', '.join(sorted(views)) or 'none'}",
                    )
            if not ctx.live:
                continue  # no target: its data is checked by apply and up, not in a plan from git
            path = data_path(ctx.root, store, team, check.spec)
            if "://" in path:
                continue  # cloud data is checked by the environment's own jobs, not from a laptop
            result = self._sampled_check(ctx, check, path)
            yield from check_findings(check, shown(ctx.root, path), result, sampled=True)

    def _sampled_check(self, ctx: DesiredContext, check: Spec, path: str) -> dict[str, Any]:
        """A check on a sample of its data. Its freshness expectations run every time (they read the clock);
        the others' result is kept by the digest of the data, so a plan over unchanged data imports no GX."""
        every = expectations(check)
        parts = [[i for i, e in enumerate(every) if (e["expect"] == FRESH) == fresh] for fresh in (True, False)]
        relative = Path(path).relative_to(ctx.root).as_posix() if Path(path).is_relative_to(ctx.root) else None
        results = []
        for fresh, indexes in zip((True, False), parts, strict=True):
            if not indexes:
                continue
            asked = [every[i] for i in indexes]
            digest = None
            if not fresh and ctx.cache is not None and relative is not None:
                digest = ctx.cache.digest(ctx.root, (relative,), [asked, check.spec.sample_rows])
                kept = ctx.cache.get("features/checks", digest)
                if kept is not None:
                    results.append((indexes, kept))
                    continue
            found = self.team_worker.call("check", path=path, expectations=asked, sample_rows=check.spec.sample_rows)
            if digest is not None and ctx.cache is not None:
                ctx.cache.put("features/checks", digest, found)
            results.append((indexes, found))
        failures = [f | {"index": indexes[f["index"]]} for indexes, found in results for f in found["failures"]]
        first = results[0][1] if results else {"missing": False, "rows": 0}
        failures.sort(key=lambda f: f["index"])
        return {"missing": first["missing"], "rows": first.get("rows"), "failures": failures}

    # -- targets ----------------------------------------------------------------------------------

    def observe(self, ctx: DesiredContext, target: Target) -> Iterable[Resource]:
        declared = [t.name for t in ctx.specs.of_kind(TEAM.name) if (ctx.root / PLANE / t.name).is_dir()]
        if not target.is_local:
            # Every declared team's registry: a cloud registry is not listed, so a team whose whole
            # feature repo was removed is left for its owners to delete.
            store = feature_store(ctx.specs, target.name)
            return self._observed({team: repo_config(store, team, target.root) for team in declared}, infra=False)
        if not declared and not ctx.specs.of_kind(DATA_CHECK.name):
            return list(_records(target))
        store = feature_store(ctx.specs, target.name)
        configs = {team: repo_config(store, team, target.root) for team in _registered_teams(target.root, store)}
        return self._observed(configs, infra=True) + list(_records(target))

    def _observes_registries(self, ctx: DesiredContext, target: Target) -> bool:
        """Whether ``observe`` will read a Feast registry of ``target`` (so needs the full worker)."""
        if not target.is_local:
            return any((ctx.root / PLANE / t.name).is_dir() for t in ctx.specs.of_kind(TEAM.name))
        store = ctx.specs.named(FEATURE_STORE.name, target.name)
        return store is not None and bool(_registered_teams(target.root, store.spec))

    def _observed(self, configs: dict[str, dict[str, Any]], infra: bool) -> list[Resource]:
        found = self.worker.call("observe", teams=configs, infra=infra) if configs else {}
        return [
            Resource(PLANE, o["kind"], team, o["name"], o["body"]) for team, objects in found.items() for o in objects
        ]

    def appliers(self, target: Target) -> Mapping[str, Applier]:
        appliers: dict[str, Applier] = dict.fromkeys(REGISTRY_KINDS, self._apply_registry)
        if target.is_local:
            appliers |= {"DataCheck": _keep_check, "Materialization": self._materialize}
        return appliers

    def _apply_registry(self, change: Change, ctx: DesiredContext, target: Target) -> None:
        # Feast applies a team's whole project at once; repeating it for the project's
        # other changes finds nothing left to do.
        store = feature_store(ctx.specs, target.name)
        team = change.scope
        config = repo_config(store, team, target.root)
        offline = offline_uri(store, team)
        if target.is_local and "://" not in offline:
            # The same folder as planned, anchored at this checkout: the registry then holds what `feast`
            # run in features/<team>/ writes, so neither side sees the other's apply as a change (observe
            # reads an absolute path inside the checkout back as the repository-relative one).
            offline = str(target.root / offline)
        self.worker.call("apply", root=str(target.root), team=team, config=config, offline=offline)

    def _materialize(self, change: Change, ctx: DesiredContext, target: Target) -> None:
        """Load the planned window into the online store, once the view's checks pass on all of its data."""
        if change.action is Action.DELETE or change.desired is None:
            _records(target).delete(change.key)
            return
        team, window = change.scope, change.desired.body
        store = feature_store(ctx.specs, target.name)
        failures: list[Diagnostic] = []
        for check in (c for c in checks_of(ctx.specs, team) if window["featureView"] in c.spec.feature_views):
            path = data_path(target.root, store, team, check.spec)
            result = self.team_worker.call("check", path=path, expectations=expectations(check), sample_rows=None)
            failures += check_findings(check, shown(target.root, path), result, sampled=False)
        if failures:
            raise DataCheckFailed(failures, f"{team}/{window['featureView']} was not materialized")
        self.worker.call(
            "materialize",
            team=team,
            config=repo_config(store, team, target.root),
            views=[window["featureView"]],
            start=window["start"],
            end=window["end"],
        )
        _records(target).put(change.desired)

    # -- services other planes use through the SDK ------------------------------------------------

    def training_inputs(self, ctx: DesiredContext, target: Target, team: str) -> dict[str, str]:
        """``TrainingInputs``: the team's store config, offline data and data checks, for its training run."""
        store = feature_store(ctx.specs, target.name)
        checks = [
            {
                "name": f"{team}/{c.name}",
                "path": data_path(target.root, store, team, c.spec),
                "expectations": expectations(c),
            }
            for c in checks_of(ctx.specs, team)
        ]
        offline = offline_uri(store, team)
        # A cloud run reads everything from URLs; its repo path is its own working folder.
        anchor = target.root if target.is_local else Path(".")
        return {
            "feature_store": json.dumps(repo_config(store, team, anchor)),
            "offline_uri": offline if "://" in offline else str(target.root / offline),
            "data_checks": json.dumps(checks),
        }

    def online_features(
        self, ctx: DesiredContext, target: Target, team: str, service: str, entity: dict[str, Any]
    ) -> dict[str, Any]:
        """``OnlineFeatures``: one entity's features from the team's online store, as a served model reads them."""
        config = repo_config(feature_store(ctx.specs, target.name), team, target.root)
        found: dict[str, Any] = self.worker.call("online", config=config, service=service, entity=entity)
        return found

    # -- the local platform -----------------------------------------------------------------------

    def prepare(self, ctx: DesiredContext, target: Target) -> Iterable[str]:
        """Each team's ``feature_store.yaml`` for plain ``feast`` (``shipyard features init``), and synthetic
        data for each team that has a generator and no data yet (``shipyard seed``)."""
        from shipyard.planes.features.localrepo import write_repo_configs
        from shipyard.planes.features.seed import seed

        if not target.is_local:
            return
        for written in write_repo_configs(target.root, ctx.specs):
            if written.changed:
                yield f"{written.team}: wrote {written.path.relative_to(target.root)} (for feast in that folder)"
        for seeded in seed(target.root, ctx.specs):
            verb = "kept existing data in" if seeded.skipped else "wrote"
            yield f"{seeded.team}: {verb} {seeded.folder.relative_to(target.root)}"


def _materializations(ctx: DesiredContext, team: str, objects: list[dict[str, Any]]) -> Iterator[Resource]:
    """One window per online view, ending at the newest event its data held when the plan was made."""
    store = feature_store(ctx.specs, ctx.environment)
    lookback = timedelta(days=store.materialization.lookback_days)
    newest: Mapping[str, str | None] = ctx.facts.get("newest", {})
    views = {o["name"]: o["body"] for o in objects if o["kind"] == "FeatureView" and o["body"].get("online")}
    for view, body in sorted(views.items()):
        end_at = newest.get(f"{team}/{view}")
        if end_at is None:
            continue  # no data yet: check() says so
        end = datetime.fromisoformat(end_at)
        window = {"featureView": view, "start": (end - lookback).isoformat(), "end": end.isoformat()}
        # A changed view is materialized again, even over the same window.
        yield Resource(PLANE, "Materialization", team, view, window | {"view": content_digest(body)})


def _keep_check(change: Change, ctx: DesiredContext, target: Target) -> None:
    if change.action is Action.DELETE or change.desired is None:
        _records(target).delete(change.key)
    else:
        _records(target).put(change.desired)


def shown(root: Path, path: str) -> str:
    """A data file as findings name it: relative to the repository (what a plan prints is read elsewhere)."""
    where = Path(path)
    return where.relative_to(root).as_posix() if where.is_relative_to(root) else path


def team_inputs(root: Path, team: str) -> list[str]:
    """The team's folder as its unit's inputs: every entry but the ``feature_store.yaml`` Shipyard writes there
    for plain ``feast`` (git-ignored, per checkout, and never read by the plane), so writing it moves no digest.
    A folder that is not there is named itself: it counts as absent."""
    folder = root / PLANE / team
    if not folder.is_dir():
        return [f"{PLANE}/{team}"]
    return [
        f"{PLANE}/{team}/{entry.name}"
        for entry in sorted(folder.iterdir())
        if entry.name != REPO_CONFIG and entry.name not in SKIPPED and not entry.name.endswith(".pyc")
    ]


def _teams(ctx: DesiredContext) -> list[str]:
    """The declared teams with a features folder: those whose Feast definitions are read."""
    return [t.name for t in ctx.specs.of_kind(TEAM.name) if (ctx.root / PLANE / t.name).is_dir()]


def _local_data(ctx: DesiredContext, team: str) -> list[str]:
    """The files in the repository that ``team``'s checks read on a live target (its local data)."""
    store = ctx.specs.named(FEATURE_STORE.name, ctx.environment)
    if store is None:
        return []
    found = []
    for check in checks_of(ctx.specs, team):
        path = Path(data_path(ctx.root, store.spec, team, check.spec))
        if path.is_relative_to(ctx.root):
            found.append(path.relative_to(ctx.root).as_posix())
    return found


def checks_of(specs: SpecSet, team: str) -> list[Spec]:
    return [c for c in specs.of_kind(DATA_CHECK.name) if c.team == team]


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


@hookimpl
def shipyard_commands() -> list[Any]:
    from shipyard.planes.features.commands import features, seed  # click is loaded by the CLI only

    return [seed, features]
