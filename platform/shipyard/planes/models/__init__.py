"""Models plane: which MLflow model version each environment serves through KServe, and how it gets there.

``models/<team>/<model>.yaml`` (kind ``ModelDeployment``) becomes two Resources per environment:

- ``ModelAlias``: the alias the environment serves (``@champion``) and the version it
  must point at. Git pins it for cloud environments (``serve.<env>.version``, changed by
  pull request); where git leaves it open, the newest version that passes the gates.
  The registry's versions and their gate facts are pinned into the plan (``pin``), so
  the decision (``decide.py``) is pure. A version a pipeline trains in the same apply is
  promoted by the engine's stage 2, planned on the facts stage 1 left.
- ``InferenceService``: the KServe v1beta1 manifest serving that version, checked
  against the real CRD schema. A canary git declares for a cloud environment
  (``serve.<env>.canary``) is rendered the way the mode supports it: Serverless sets
  ``canaryTrafficPercent`` on it; Standard adds a canary InferenceService and an
  ``HTTPRoute`` splitting traffic between the two.

Applying a ModelAlias is a promotion to exactly the version the Change names: the gates
are checked again as a guard (a version that fails them now is refused, never replaced by
another), and the move is recorded as tags on the version. On the local target the plan
also says how it moves (after a canary, or at once), from the model servers the process
table shows (pinned with the registry's facts): an apply killed during its canary leaves
two servers running, and the next plan runs the canary again rather than moving at once.
A reference that names nothing (a registered model no pipeline registers and MLflow does
not know, a pinned version that does not exist) is an error at its spec line, never an
empty lookup planned as a delete.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.planes.models import validation
from shipyard.planes.models.decide import DIRECT, VERDICT, Decision, decide, label
from shipyard.planes.models.promotion import CanaryRolledBack, promote
from shipyard.planes.models.registry import REJECTED_TAG, ModelRegistry, canary_passed, moved_here_by_shipyard
from shipyard.planes.models.serving import probe
from shipyard.planes.models.serving.local import LocalServing, Release
from shipyard.planes.models.spec import METRIC_GATE, ModelDeploymentSpec
from shipyard.sdk import (
    Action,
    Applier,
    Change,
    DesiredContext,
    Diagnostic,
    Facts,
    FieldPath,
    Kind,
    LocalService,
    Plane,
    Policy,
    PolicyContext,
    Resource,
    Severity,
    SmokeResult,
    Spec,
    SpecError,
    SpecSet,
    StalePlanError,
    Target,
    TargetUnavailable,
    Unit,
    UserError,
    content_digest,
    hookimpl,
    processes,
)
from shipyard.sdk.kubernetes import SERVER_SET_FIELDS
from shipyard.sdk.platform import MLFLOW_SERVICE, TEAM, cross_team, environment, team_file, tracking
from shipyard.sdk.services import TrainedModels, node_pool_files, unknown_gpu_pool
from shipyard.sdk.store import ResourceStore

if TYPE_CHECKING:
    from shipyard.planes.models.kubernetes import Cluster

PLANE = "models"
MODEL_DEPLOYMENT = Kind(
    "ModelDeployment",
    ModelDeploymentSpec,
    globs=("models/*/*.yaml",),
    description="A model served by KServe: registered model, alias per environment, runtime, gates, canary.",
)
#: On the InferenceService: the registered model and the version it serves.
MODEL_LABEL, VERSION_LABEL = "shipyard.dev/model", "shipyard.dev/model-version"


class ModelsPlane(Plane):
    name = PLANE
    order = 50
    ignored_fields: ClassVar[Mapping[str, Sequence[FieldPath]]] = {
        "InferenceService": SERVER_SET_FIELDS,
        "HTTPRoute": SERVER_SET_FIELDS,
    }

    # -- pin, desired, check: pure over the facts pinned from the registry ------------------------

    def pin(self, ctx: DesiredContext, target: Target) -> Facts:
        """Per deployment: the version its alias points at, the newest unrejected one, and their gate facts;
        locally also the versions its model servers run (how the alias may move: after a canary or at once)."""
        served = _deployments(ctx.specs, ctx.environment)
        if not served:
            return {}
        registry = _registry(ctx.specs, target)
        known = registry.models() if registry is not None else []
        problems: list[Diagnostic] = []
        found = {}
        for spec in served:
            facts, wrong = _pin_one(registry, known, ctx, spec)
            problems += wrong
            if facts is not None and target.is_local:
                facts["serving"] = _serving(target, spec)
            found[label(spec)] = facts
        if problems:
            raise SpecError(problems, f"{len(problems)} reference(s) in model deployments name nothing")
        return {"deployments": found}

    def units(self, ctx: DesiredContext) -> Sequence[Unit]:
        """One per team: its deployments' specs and pinned facts, its Team spec (the namespace), the GPU pools."""
        teams: dict[str, list[Spec]] = {}
        for spec in _deployments(ctx.specs, ctx.environment):
            teams.setdefault(str(spec.team), []).append(spec)
        pinned = ctx.facts.get("deployments", {})
        pools = node_pool_files(ctx)
        return [
            Unit(
                team,
                (*sorted({s.source.file for s in specs}), *team_file(ctx.specs, team), *pools),
                {label(s): pinned.get(label(s)) for s in specs} if pinned else None,
            )
            for team, specs in sorted(teams.items())
        ]

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        for decision in _decisions(ctx):
            spec = decision.spec
            assert spec.team is not None
            alias = (decision.alias_body, spec.source, decision.alias_payload)
            yield Resource(PLANE, "ModelAlias", spec.team, spec.name, *alias)
            if decision.version is not None or not ctx.live:
                for manifest in decision.manifests:
                    name = manifest["metadata"]["name"]
                    yield Resource(PLANE, manifest["kind"], spec.team, name, manifest, spec.source)

    def check(self, ctx: DesiredContext, resources: Sequence[Resource]) -> Iterable[Diagnostic]:
        for decision in _decisions(ctx):
            spec = decision.spec
            pool = spec.spec.resources.gpu_pool
            wrong = None if pool is None else unknown_gpu_pool(ctx, spec, ("spec", "resources", "gpuPool"), pool)
            if wrong is not None:
                yield replace(wrong, rule="models/gpu-pool")
            for path, message in (found for m in decision.manifests for found in validation.problems(m)):
                found = spec.diagnostic(
                    validation.spec_path(path),
                    got=f"the rendered InferenceService has {'.'.join(map(str, path)) or 'a problem'}: {message}",
                    expected="a manifest the InferenceService CRD (serving.kserve.io/v1beta1) accepts",
                )
                yield replace(found, rule="models/inferenceservice-schema")
            if decision.held_back is not None:
                version, failures = decision.held_back
                found = spec.diagnostic(
                    ("spec", "gates"),
                    got=f"version {version} of {spec.spec.registered_model} is not promoted to "
                    f"@{decision.alias}: " + "; ".join(map(str, failures)),
                    expected="a version that passes every gate",
                    hint="train a better version, or change the gates in review",
                )
                yield replace(found, rule="models/gates", severity=Severity.WARNING)
            yield from _unlogged_gate_metrics(ctx, spec)

    # -- observe and apply: the local target (our servers) or a cloud one (cluster + registry) -----

    def observe(self, ctx: DesiredContext, target: Target) -> Iterable[Resource]:
        if target.is_local:
            observed = [
                record
                for record in _records(target)
                # An InferenceService exists while its servers run: one killed is planned to start again.
                if record.kind == "InferenceService"
                and LocalServing(target.state_dir, record.scope, record.name).serving()
            ]
        else:
            observed = [_observed(item) for item in _cluster(ctx.specs, target.name).list()]
        pinned = ctx.facts.get("deployments", {})
        for spec in _deployments(ctx.specs, ctx.environment):
            facts = pinned.get(label(spec))
            # The alias as the registry holds it (pinned with the plan): one moved by hand shows as drift.
            version = None if facts is None else facts["alias"]
            body = {"registeredModel": spec.spec.registered_model, "alias": spec.spec.serve[target.name].alias}
            observed.append(Resource(PLANE, "ModelAlias", str(spec.team), spec.name, body | {"version": version}))
        return observed

    def appliers(self, target: Target) -> Mapping[str, Applier]:
        if target.is_local:
            return {"ModelAlias": _promote_locally, "InferenceService": _serve_locally}
        return {"ModelAlias": _promote_remotely, "InferenceService": _apply_manifest, "HTTPRoute": _apply_manifest}

    # -- the local platform -----------------------------------------------------------------------

    def smoke(self, ctx: DesiredContext, target: Target) -> Iterable[SmokeResult]:
        from shipyard.planes.models.smoke import smoke

        for spec in _deployments(ctx.specs, "local"):
            yield smoke(ctx, target, spec)


def _deployments(specs: SpecSet, environment_name: str) -> list[Spec]:
    return [s for s in specs.of_kind(MODEL_DEPLOYMENT.name) if environment_name in s.spec.serve]


def _decisions(ctx: DesiredContext) -> list[Decision]:
    return [decide(ctx, spec) for spec in _deployments(ctx.specs, ctx.environment) if ctx.wants(spec.team)]


def _pin_one(
    registry: ModelRegistry | None, known: list[str], ctx: DesiredContext, spec: Spec
) -> tuple[dict[str, Any] | None, list[Diagnostic]]:
    """One deployment's facts, or the references in it that name nothing."""
    deployment: ModelDeploymentSpec = spec.spec
    model, serve = deployment.registered_model, deployment.serve[ctx.environment]
    assert spec.team is not None
    trainers = [p for p in ctx.providers if isinstance(p, TrainedModels)]
    trained_here = sorted({model for p in trainers for model in p.trained_models(ctx.specs, spec.team)})
    if model not in known and model not in trained_here:
        return None, [
            spec.diagnostic(
                ("spec", "registeredModel"),
                got=f"'{model}'",
                expected="a model registered in MLflow ("
                + (", ".join(known) or "none yet")
                + f") or one a pipeline of team {spec.team} registers ({', '.join(trained_here) or 'none'})",
                hint="check the name for a typo; nothing is planned for this deployment until it names a model",
            )
        ]
    every = registry.versions(model) if registry is not None and model in known else []
    problems = [
        spec.diagnostic(
            ("spec", "serve", ctx.environment, field),
            got=f"version {pinned} of {model}",
            expected=f"a version that exists: {', '.join(map(str, every)) or 'none yet'}",
        )
        for field, pinned in (("version", serve.version), ("canary", serve.canary))
        if pinned is not None and pinned not in every
    ]
    if problems or registry is None or not every:
        return (None if problems else {"alias": None, "newest": None, "versions": {}}), problems
    current = registry.alias(model, serve.alias)
    newest = next(iter(registry.versions(model, rejected=False)), None)
    wanted = sorted({v for v in (current, newest, serve.version, serve.canary) if v is not None})
    return {
        "alias": current,
        "newest": newest,
        "versions": {str(v): _version_facts(registry, spec, serve.alias, v) for v in wanted},
    }, []


def _unlogged_gate_metrics(ctx: DesiredContext, spec: Spec) -> Iterator[Diagnostic]:
    """A gate on a metric none of the versions the plan read logged: a typo, or a metric the pipeline never logs.

    A warning, not an error: a change may add the metric to the pipeline and the gate together.
    """
    facts = ctx.facts.get("deployments", {}).get(label(spec))
    logged = {m for v in (facts or {}).get("versions", {}).values() for m in v["metrics"]}
    if not logged:
        return  # nothing trained yet (or planned from git alone): nothing to compare with
    gates = spec.spec.gates
    named = [(("spec", "gates", "metrics", i), METRIC_GATE.match(g)) for i, g in enumerate(gates.metrics)]
    metrics: list[tuple[FieldPath, str]] = [(path, match.group(1)) for path, match in named if match is not None]
    if gates.no_worse_than_current is not None:
        metrics.append((("spec", "gates", "noWorseThanCurrent", "metric"), gates.no_worse_than_current.metric))
    for path, metric in metrics:
        if metric in logged:
            continue
        close = difflib.get_close_matches(metric, sorted(logged), n=1)
        found = spec.diagnostic(
            path,
            got=f"a gate on '{metric}', which no version of {spec.spec.registered_model} logged",
            expected=f"a metric its training runs log: {', '.join(sorted(logged))}",
            hint=f"did you mean '{close[0]}'?"
            if close
            else "log it in the training pipeline, or gate on a metric it logs; until then no version passes",
        )
        yield replace(found, rule="models/gate-metric", severity=Severity.WARNING)


def _serving(target: Target, spec: Spec) -> list[int]:
    """The versions the deployment's local model servers run (an interrupted canary leaves two)."""
    servers = LocalServing(target.state_dir, str(spec.team), spec.name).servers
    return sorted({s.version for s in servers if processes.alive(s.process)})


def _version_facts(registry: ModelRegistry, spec: Spec, alias: str, version: int) -> dict[str, Any]:
    from shipyard.planes.models.promotion import team_candidate

    found = team_candidate(registry, spec, version)
    return {
        "metrics": dict(sorted(found.metrics.items())),
        "dataChecks": sorted(found.data_checks),
        "datasets": sorted(found.datasets),
        "movedByShipyard": moved_here_by_shipyard(found.tags, alias),
        "storage": registry.storage_uri(spec.spec.registered_model, version),
        "canaryPassed": canary_passed(found.tags, alias),
        "provenance": found.provenance,
    }


def _spec_of(ctx: DesiredContext, change: Change) -> Spec:
    return ctx.specs.require(MODEL_DEPLOYMENT.name, change.name, change.scope, hint="the plan names it; plan again")


def _promote_locally(change: Change, ctx: DesiredContext, target: Target) -> None:
    """Move the alias to the Change's version the way its plan says: after a canary, after one's verdict, or at once."""
    if change.action is Action.DELETE or change.desired is None or change.desired.body["version"] is None:
        return  # a removed deployment's alias stays in MLflow; an alias with no version has nothing to move to
    body, serves = change.desired.body, change.desired.payload
    spec, version = _spec_of(ctx, change), int(body["version"])
    registry = _required_registry(ctx.specs, target)
    model, alias, canary = body["registeredModel"], body["alias"], spec.spec.canary
    rollout = serves.get("rollout", DIRECT)
    serving = LocalServing(target.state_dir, change.scope, change.name)
    release = Release(model, version, registry.uri, serves["manifest"])

    def trial(current: int | None) -> str:
        if rollout == DIRECT:
            return ""
        if current is None or canary is None:
            raise StalePlanError(
                f"the plan moves @{alias} of {model} to version {version} after a canary, "
                f"but {'@' + alias + ' points at nothing' if current is None else 'the deployment has no canary'} now",
                hint="plan again",
            )
        if rollout == VERDICT:
            # The canary ran and passed; the apply that ran it stopped before the move.
            if canary_passed(registry.candidate(model, version).tags, alias) != current:
                raise StalePlanError(
                    f"the plan moves @{alias} of {model} to version {version} on its canary verdict beside "
                    f"version {current}, but no such verdict is recorded",
                    hint="plan again",
                )
            return " after a canary"

        def decided(found: list[str]) -> None:
            """The verdict, recorded before the servers act on it (an apply killed after it does not lose it)."""
            if found:
                registry.reject(model, version, "canary: " + "; ".join(found))
            else:
                registry.record_canary(model, alias, version, beside=current)

        path, request = probe.sample_request(registry.uri, serves["storageUri"], spec.spec.protocol, spec.name)
        found = serving.canary(release, canary, lambda url, n: probe.send(url, path, request, n), current, decided)
        if found:
            raise CanaryRolledBack(
                f"{model} version {version} was rolled back after its canary ({canary.percent}% of traffic): "
                + "; ".join(found),
                hint=f"@{alias} stays on version {current}; version {version} is marked {REJECTED_TAG} "
                f"and is not tried again unless you promote it by hand: shipyard promote {change.scope}/{change.name} "
                f"--version {version} --reason '...'",
            )
        return " after a canary"

    promote(registry, spec, alias, version, why="shipyard apply", trial=trial)


def _serve_locally(change: Change, ctx: DesiredContext, target: Target) -> None:
    """Serve exactly the version the InferenceService names, behind the deployment's router."""
    serving = LocalServing(target.state_dir, change.scope, change.name)
    if change.action is Action.DELETE or change.desired is None:
        serving.stop()
        _records(target).delete(change.key)
        return
    manifest = change.desired.body
    labels = manifest["metadata"]["labels"]
    release = Release(
        labels[MODEL_LABEL], int(labels[VERSION_LABEL]), tracking(ctx.specs, target).uri, content_digest(manifest)
    )
    serving.roll_out(release)
    _records(target).put(change.desired)


def _promote_remotely(change: Change, ctx: DesiredContext, target: Target) -> None:
    if change.action is Action.DELETE or change.desired is None or change.desired.body["version"] is None:
        return  # aliases of removed deployments stay; an alias with no version yet has nothing to move to
    body = change.desired.body
    registry = _required_registry(ctx.specs, target)
    promote(
        registry, _spec_of(ctx, change), body["alias"], int(body["version"]), why=f"shipyard apply to {target.name}"
    )


def _apply_manifest(change: Change, ctx: DesiredContext, target: Target) -> None:
    """A cloud environment: server-side apply of exactly the planned manifest (or delete the observed one)."""
    cluster = _cluster(ctx.specs, target.name)
    if change.action is Action.DELETE or change.desired is None:
        assert change.observed is not None
        meta = change.observed.body["metadata"]
        cluster.delete(change.kind, meta["namespace"], meta["name"])
    else:
        cluster.apply(dict(change.desired.body))


def _cluster(specs: SpecSet, environment_name: str) -> Cluster:
    from shipyard.planes.models.kubernetes import Cluster

    return Cluster(environment(specs, environment_name).kubernetes.context)


def _observed(item: dict[str, Any]) -> Resource:
    """A managed object as we applied it; an InferenceService with KServe's status (which the diff ignores)."""
    from shipyard.planes.models.kubernetes import owned, status

    meta, kind = item["metadata"], item["kind"]
    body = owned(item)
    if kind == "InferenceService":
        found = status(item)
        body |= {"status": {"ready": found.ready, "url": found.url, "traffic": dict(found.traffic)}}
    return Resource(PLANE, kind, meta["labels"]["shipyard.dev/team"], meta["name"], body)


def _registry(specs: SpecSet, target: Target) -> ModelRegistry | None:
    """The target's registry; None locally before anything was trained (opening SQLite would create it)."""
    uri = tracking(specs, target).uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    if uri.startswith(("http://", "https://")):
        where = (
            "run `shipyard up` to start the local MLflow server"
            if target.is_local
            else f"check mlflow.trackingUri in platform/environments/{target.name}.yaml and the network"
        )
        _answers(uri, where)
    # Locally Shipyard runs the pipelines, so their runs carry its provenance tags: only their versions are
    # candidates. A cloud's pipelines run in Kubeflow, which does not tag them (yet): README, "Threat model".
    return ModelRegistry(uri, provenance=target.is_local)


def _required_registry(specs: SpecSet, target: Target) -> ModelRegistry:
    registry = _registry(specs, target)
    if registry is None:
        raise UserError("nothing is registered locally yet", hint="train first: shipyard apply (or shipyard up)")
    return registry


def _answers(uri: str, hint: str) -> None:
    """Fail at once, and clearly, when a tracking server is not there (MLflow's client retries for minutes)."""
    # Any status will do: a proxy or auth in front may refuse /health itself.
    if processes.http_status(f"{uri.rstrip('/')}/health", timeout_s=10) is None:
        raise TargetUnavailable(f"the MLflow tracking server at {uri} did not answer", hint=hint)


def _records(target: Target) -> ResourceStore:
    """What the local target serves: the InferenceServices applied to it."""
    return ResourceStore(target.state_dir / PLANE)


def local_registry(specs: SpecSet, target: Target) -> ModelRegistry:
    """The local target's MLflow registry, for the ``promote``/``rollback`` verbs and the smoke request."""
    return _required_registry(specs, target)


def feature_team(specs: SpecSet, spec: Spec) -> str:
    """The team whose feature service a deployment's smoke request reads: another team that exports one of that
    name (spec.exports.featureServices), else the deployment's own."""
    service = spec.spec.smoke.feature_service if spec.spec.smoke is not None else ""
    exporters = (
        t.name for t in specs.of_kind(TEAM.name) if t.name != spec.team and service in t.spec.exports.feature_services
    )
    return next(exporters, str(spec.team))


def _smoke_feature_service_exists(ctx: PolicyContext) -> Iterator[Diagnostic]:
    """A smoke request reads a feature service the team's desired state declares (whichever plane declares it),
    or one another team declares and exports."""
    declared = {(r.scope, r.name) for r in ctx.resources or () if r.kind == "FeatureService"}
    if not declared:
        return  # no plane in this plan declares feature services: nothing to check against
    for spec in ctx.specs.of_kind(MODEL_DEPLOYMENT.name):
        smoke = spec.spec.smoke
        owner = feature_team(ctx.specs, spec)
        if smoke is None or (owner, smoke.feature_service) in declared:
            continue
        others = sorted(team for team, name in declared if name == smoke.feature_service and team != spec.team)
        if owner == spec.team and others:
            yield cross_team(
                ctx.specs,
                spec,
                ("spec", "smoke", "featureService"),
                value=smoke.feature_service,
                what="feature service",
                owner=others[0],
                why=f"declared in features/{others[0]}/",
                export="featureServices",
            )
            continue
        names = ", ".join(sorted(name for team, name in declared if team == owner)) or "none"
        yield spec.diagnostic(
            ("spec", "smoke", "featureService"),
            got=f"'{smoke.feature_service}'",
            expected=f"a feature service of team {owner}: {names}",
        )


@hookimpl
def shipyard_policies() -> list[Policy]:
    return [
        Policy(
            "SY-MOD-001",
            "A deployment's smoke request reads a feature service its team declares, or one another team exports.",
            _smoke_feature_service_exists,
            needs_resources=True,
            target="spec:ModelDeployment",
            hint="name one of the team's Feast feature services in spec.smoke.featureService",
        )
    ]


@hookimpl
def shipyard_kinds() -> list[Kind]:
    return [MODEL_DEPLOYMENT]


@hookimpl
def shipyard_planes() -> list[Plane]:
    return [ModelsPlane()]


@hookimpl
def shipyard_commands() -> list[Any]:
    from shipyard.planes.models.commands import promote_version, rollback_version  # click: the CLI's only

    return [promote_version, rollback_version]


def mlflow_store(state: Path) -> Path:
    """The local tracking server's store: its SQLite database (its artifacts lie beside it)."""
    return state / "mlflow" / "mlflow.db"


def mlflow_server_command(port: int, state: Path) -> list[str]:
    """The tracking server over the local target's own SQLite registry: runs, models and the UI."""
    folder = mlflow_store(state).parent
    folder.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{mlflow_store(state)}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--workers",
        "1",
    ]


#: What the MLflow server logs when it cannot open its store, and then the cause.
_STORE_FAILED = "Error initializing backend store"
_CAUSE = re.compile(r"^(?:sqlalchemy|alembic)[\w.]*(?:Error|Exception): (.+)$")


def mlflow_store_damaged(state: Path, output: str) -> UserError | None:
    """The error for a tracking server that exited because its store would not open, naming the store and the fix.

    A store is left half-migrated when its server is killed while migrating it (the SQL of one
    migration ran, its record did not): every later start stops at ``table ... already exists``.
    """
    lines = output.splitlines()
    marked = [n for n, line in enumerate(lines) if _STORE_FAILED in line]
    if marked and marked[-1] + 1 < len(lines):
        cause = lines[marked[-1] + 1].split(": ", 1)[-1].strip()  # after the log line's time and logger
    else:
        causes = [found.group(1) for line in lines if (found := _CAUSE.match(line.strip()))]
        if not causes:
            return None  # not the store: its output says what
        cause = causes[-1]
    store = mlflow_store(state)
    if "database is locked" in cause:
        return UserError(
            f"the MLflow server could not open its store {store}: {cause}",
            hint=f"another program has {store} open (an SQLite shell?): close it, then run `shipyard up` again",
        )
    return UserError(
        f"the MLflow server could not open its store {store}: {cause}",
        hint=(
            "the store is damaged (a migration interrupted halfway?): `shipyard down --purge` deletes .shipyard/ "
            "(local runs, models and state) and `shipyard up` starts afresh; "
            f"to keep a copy, move {store.parent} aside first"
        ),
    )


@hookimpl
def shipyard_local_services() -> list[LocalService]:
    return [
        LocalService(
            MLFLOW_SERVICE,
            "MLflow tracking server and UI over .shipyard/local/mlflow (SQLite, local artifacts)",
            mlflow_server_command,
            health_path="/health",
            diagnose=mlflow_store_damaged,
            # MLflow 3's job runner (huey consumers for server-side jobs, which nothing here submits): off, it
            # is 2 processes instead of 10 and a quarter of the memory.
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
    ]
