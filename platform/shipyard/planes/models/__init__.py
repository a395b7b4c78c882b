"""Models plane: which MLflow model version each environment serves through KServe, and how it gets there.

``models/<team>/<model>.yaml`` (kind ``ModelDeployment``) becomes two Resources per environment:

- ``ModelAlias``: the alias the environment serves (``@champion``) and the version it
  must point at. Git pins it for cloud environments (``serve.<env>.version``, changed by
  pull request); where git leaves it open, the newest version that passes the gates,
  among those trained by the team's pipelines as they are now (``trainedBy``: a digest
  of each Pipeline that registers the model). So changing a pipeline also plans the
  promotion its new run leads to, and both happen in one apply.
- ``InferenceService``: the KServe v1beta1 manifest serving that version, checked
  against the real CRD schema. A canary git declares for a cloud environment
  (``serve.<env>.canary``) is rendered the way the mode supports it: Serverless sets
  ``canaryTrafficPercent`` on it; Standard adds a canary InferenceService and an
  ``HTTPRoute`` splitting traffic between the two.

Applying a ModelAlias is a promotion: the gates are evaluated again against MLflow,
the alias moves only if they all pass, and the move is recorded as tags on the version.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.planes.models import validation
from shipyard.planes.models.gates import Candidate, GateFailure, evaluate
from shipyard.planes.models.registry import REJECTED_TAG, ModelRegistry, moved_here_by_shipyard
from shipyard.planes.models.render import Serving, inference_service, standard_canary
from shipyard.planes.models.serving import probe
from shipyard.planes.models.serving.local import LocalServing, Release
from shipyard.planes.models.spec import ModelDeploymentSpec
from shipyard.planes.tenancy.environment import environment, mlflow_tracking
from shipyard.planes.tenancy.manifests import team_namespace
from shipyard.sdk import (
    Action,
    Change,
    DesiredContext,
    Diagnostic,
    FieldPath,
    Kind,
    LocalService,
    Plane,
    Readings,
    Resource,
    Severity,
    Spec,
    SpecSet,
    Target,
    TargetUnavailable,
    UserError,
    content_digest,
    hookimpl,
    processes,
)
from shipyard.sdk.kubernetes import SERVER_SET_FIELDS
from shipyard.sdk.planes import local_state_dir
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


def key(team: str, name: str, kind: str) -> str:
    return f"{PLANE}/{team}/{name}/{kind}"


class PromotionRefused(UserError):
    """A version failed its gates: the alias did not move."""


class CanaryRolledBack(UserError):
    """The canary analysis found the new version worse: it no longer serves, and the alias did not move."""


@dataclass(frozen=True)
class Decision:
    """Where one deployment's alias should point, and why not further."""

    spec: Spec
    alias: str
    version: int | None  # None: nothing to serve yet (or unresolved, when not live)
    manifest: dict[str, Any]  # the InferenceService serving it
    trained_by: dict[str, str]  # pipeline key → digest of the pipeline that registers the model
    held_back: tuple[int, tuple[GateFailure, ...]] | None = None  # a newer version and the gates it failed
    canary: tuple[dict[str, Any], ...] = ()  # Standard mode's canary InferenceService and HTTPRoute

    @property
    def manifests(self) -> tuple[dict[str, Any], ...]:
        return (self.manifest, *self.canary)


class ModelsPlane(Plane):
    name = PLANE
    order = 50
    ignored_fields: ClassVar[Mapping[str, Sequence[FieldPath]]] = {
        "InferenceService": SERVER_SET_FIELDS,
        "HTTPRoute": SERVER_SET_FIELDS,
    }

    def __init__(self) -> None:
        self._decided: Readings[list[Decision]] = Readings(PLANE)

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        for decision in self._decide(ctx):
            spec = decision.spec
            assert spec.team is not None
            yield Resource(
                PLANE, "ModelAlias", key(spec.team, spec.name, "ModelAlias"), _alias_body(decision), spec.source
            )
            if decision.version is not None or not ctx.live:
                for manifest in decision.manifests:
                    kind = manifest["kind"]
                    yield Resource(
                        PLANE, kind, key(spec.team, manifest["metadata"]["name"], kind), manifest, spec.source
                    )

    def check(self, ctx: DesiredContext) -> Iterable[Diagnostic]:
        for decision in self._decide(ctx):
            spec = decision.spec
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

    def _decide(self, ctx: DesiredContext) -> list[Decision]:
        cached = self._decided.get(ctx)
        if cached is not None:
            return cached
        specs = [s for s in ctx.specs.of_kind(MODEL_DEPLOYMENT.name) if ctx.environment in s.spec.serve]
        registry = _registry(ctx.specs, ctx.environment, local_state_dir(ctx.root)) if ctx.live and specs else None
        return self._decided.put(ctx, [_decision(ctx, spec, registry) for spec in specs])

    # -- observe and apply: the local target (our servers) or a cloud one (cluster + registry) -----

    def observe(self, target: Target) -> Iterable[Resource]:
        ctx, decisions = self._decided.of(target)
        registry = _registry(ctx.specs, target.name, target.state_dir)
        if target.is_local:
            records = {r.key: r for r in _records(target)}
            observed = [
                record
                for record in records.values()
                # An InferenceService exists while its servers run: one killed is planned to start again.
                if record.kind == "InferenceService" and LocalServing(target.state_dir, *_named(record.key)).serving()
            ]
        else:
            records, observed = {}, [_observed(item) for item in _cluster(ctx.specs, target.name).list()]
        for decision in decisions:
            spec = decision.spec
            alias_key = key(str(spec.team), spec.name, "ModelAlias")
            model = spec.spec.registered_model
            applied = records.get(alias_key)
            body = {
                "registeredModel": model,
                "alias": decision.alias,
                # Read from the registry: an alias someone moved by hand shows as drift.
                "version": None if registry is None else registry.alias(model, decision.alias),
                "trainedBy": applied.body["trainedBy"] if applied is not None else {},
            }
            observed.append(Resource(PLANE, "ModelAlias", alias_key, body))
        return observed

    def apply(self, change: Change, target: Target) -> None:
        if not target.is_local:
            self._apply_remote(change, target)
            return
        team, name = _named(change.key)
        if change.action is Action.DELETE:
            if change.kind == "InferenceService":
                LocalServing(target.state_dir, team, name).stop()
            _records(target).delete(change.key)  # a removed deployment's alias stays in MLflow
            return
        assert change.desired is not None
        ctx, decisions = self._decided.of(target)
        planned = next(d for d in decisions if (d.spec.team, d.spec.name) == (team, name))
        # Decided again now: a pipeline applied just before may have registered the version to serve.
        registry = _registry(ctx.specs, "local", target.state_dir)
        decision = _decision(ctx, planned.spec, registry)
        # The verification after apply sees what was decided now.
        self._decided.put(ctx, [decision if d is planned else d for d in decisions])
        serving = LocalServing(target.state_dir, team, name)
        if change.kind == "ModelAlias":
            if registry is not None and decision.version is not None:
                _promote_locally(registry, decision, serving)
            # What the alias was decided from: the plan after the next training shows it changed.
            _records(target).put(Resource(PLANE, "ModelAlias", change.key, {"trainedBy": decision.trained_by}))
        if registry is not None and decision.version is not None:
            # Serving follows the alias, also when the version was trained earlier in this apply.
            serving.roll_out(_release(registry, decision))
            served = key(team, name, "InferenceService")
            _records(target).put(Resource(PLANE, "InferenceService", served, decision.manifest, change.desired.source))

    def _apply_remote(self, change: Change, target: Target) -> None:
        """A cloud environment: server-side apply of the manifests; the alias moved through the gates."""
        ctx, decisions = self._decided.of(target)
        if change.kind != "ModelAlias":
            cluster = _cluster(ctx.specs, target.name)
            if change.action is Action.DELETE:
                assert change.observed is not None
                meta = change.observed.body["metadata"]
                cluster.delete(change.kind, meta["namespace"], meta["name"])
            else:
                assert change.desired is not None
                cluster.apply(dict(change.desired.body))
            return
        if change.action is Action.DELETE or change.desired is None or change.desired.body["version"] is None:
            return  # aliases of removed deployments stay; an alias with no version yet has nothing to move to
        decision = next(d for d in decisions if key(str(d.spec.team), d.spec.name, "ModelAlias") == change.key)
        registry = _registry(ctx.specs, target.name, target.state_dir)
        assert registry is not None
        assert decision.version is not None
        promote(registry, decision.spec, decision.alias, decision.version, why=f"shipyard apply to {target.name}")


def _named(resource_key: str) -> tuple[str, str]:
    """(team, deployment) of a models plane key."""
    team, name = resource_key.split("/")[1:3]
    return team, name


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
    return Resource(PLANE, kind, key(meta["labels"]["shipyard.dev/team"], meta["name"], kind), body)


def _promote_locally(registry: ModelRegistry, decision: Decision, serving: LocalServing) -> None:
    """Move the alias to the decided version; with a canary, only after the new version did well on live traffic."""
    spec, version = decision.spec, decision.version
    assert version is not None
    model, canary = spec.spec.registered_model, spec.spec.canary

    def trial(current: int | None) -> str:
        stable = serving.serving()
        if canary is None or stable is None or stable.version != current:
            return ""
        storage = registry.storage_uri(model, version)
        path, body = probe.sample_request(registry.uri, storage, spec.spec.protocol, spec.name)
        found = serving.canary(_release(registry, decision), canary, lambda url, n: probe.send(url, path, body, n))
        if found:
            registry.reject(model, version, "canary: " + "; ".join(found))
            raise CanaryRolledBack(
                f"{model} version {version} was rolled back after its canary ({canary.percent}% of traffic): "
                + "; ".join(found),
                hint=f"@{decision.alias} stays on version {current}; version {version} is marked {REJECTED_TAG} "
                "and is not tried again",
            )
        return " after a canary"

    promote(registry, spec, decision.alias, version, why="shipyard apply", trial=trial)


def _release(registry: ModelRegistry, decision: Decision) -> Release:
    assert decision.version is not None
    return Release(
        decision.spec.spec.registered_model, decision.version, registry.uri, content_digest(decision.manifest)
    )


def promote(
    registry: ModelRegistry,
    spec: Spec,
    alias: str,
    version: int,
    why: str,
    trial: Callable[[int | None], str] = lambda current: "",
) -> int | None:
    """Move ``alias`` to ``version`` if it passes the spec's gates; returns the version it left.

    ``trial`` runs after the gates pass and before the move, given the version the alias
    is on (a local canary); it refuses by raising, and returns what to add to ``why``.
    """
    current = registry.alias(spec.spec.registered_model, alias)
    if current == version:
        return current
    failures = _gate_failures(registry, spec, alias, version, current)
    if failures:
        raise PromotionRefused(
            f"{spec.spec.registered_model} version {version} was not promoted to @{alias}: "
            + "; ".join(map(str, failures)),
            hint=f"the gates are in {spec.source.file}; @{alias} stays on "
            + ("nothing" if current is None else f"version {current}"),
        )
    why += trial(current)
    return registry.move(spec.spec.registered_model, alias, version, why)


def rollback(registry: ModelRegistry, spec: Spec, alias: str, why: str) -> tuple[int, int]:
    """Move ``alias`` back to the version it pointed at before; the version it leaves is not promoted again."""
    model = spec.spec.registered_model
    current = registry.alias(model, alias)
    previous = registry.previous(model, alias)
    if current is None or previous is None:
        raise UserError(
            f"@{alias} of {model} has no earlier version to go back to",
            hint="a rollback needs a promotion recorded by Shipyard before it",
        )
    registry.reject(model, current, why)
    registry.move(model, alias, previous, f"rollback: {why}")
    return current, previous


def deployment(specs: SpecSet, ref: str) -> Spec:
    """The ModelDeployment named ``<team>/<name>``."""
    team, _, name = ref.partition("/")
    known = ", ".join(f"{s.team}/{s.name}" for s in specs.of_kind(MODEL_DEPLOYMENT.name)) or "none"
    return specs.require(MODEL_DEPLOYMENT.name, name, team, hint=f"deployments: {known}")


def local_registry(specs: SpecSet, root: Path) -> ModelRegistry:
    """The local target's MLflow registry."""
    registry = _registry(specs, "local", local_state_dir(root))
    if registry is None:
        raise UserError("nothing is registered locally yet", hint="train first: shipyard apply")
    return registry


def _gate_failures(
    registry: ModelRegistry, spec: Spec, alias: str, version: int, current: int | None
) -> list[GateFailure]:
    """The gates ``version`` fails, against the version the alias serves now."""
    model = spec.spec.registered_model

    def facts(v: int) -> Candidate:
        # The training gate records checks as "<team>/<check>"; specs name them within the team.
        found = registry.candidate(model, v)
        return replace(found, data_checks=frozenset(c.removeprefix(f"{spec.team}/") for c in found.data_checks))

    baseline = None if current is None else facts(current)
    if baseline is not None and not moved_here_by_shipyard(baseline.tags, alias):
        # A version someone moved the alias to by hand is drift to undo, not a bar to clear.
        baseline = None
    return evaluate(spec.spec.gates, facts(version), baseline)


def _decision(ctx: DesiredContext, spec: Spec, registry: ModelRegistry | None) -> Decision:
    """Where the alias should point: git's pin, else the newest unrejected version if it passes the gates."""
    deployment: ModelDeploymentSpec = spec.spec
    serve = deployment.serve[ctx.environment]
    model = deployment.registered_model
    version, held_back = serve.version, None
    if registry is not None and version is None:
        current = registry.alias(model, serve.alias)
        version = current
        newest = next(iter(registry.versions(model, rejected=False)), None)
        if newest is not None and newest != current:
            failures = _gate_failures(registry, spec, serve.alias, newest, current)
            if failures:
                held_back = (newest, tuple(failures))
            else:
                version = newest
    if registry is None or version is None:
        storage = f"models:/{model}@{serve.alias}"  # unresolved: planned from git alone, or nothing trained
    else:
        storage = registry.storage_uri(model, version)
    assert spec.team is not None
    namespace = team_namespace(ctx.specs, spec.team)
    serving = Serving(version, storage)
    canary: tuple[dict[str, Any], ...] = ()
    if serve.canary is None or deployment.canary is None:
        manifest = inference_service(deployment, spec.name, spec.team, namespace, serving)
    else:
        # A canary declared in git (cloud environments): KServe splits the traffic, the mode decides how.
        trial_storage = (
            f"models:/{model}/{serve.canary}" if registry is None else registry.storage_uri(model, serve.canary)
        )
        trial, percent = Serving(serve.canary, trial_storage), deployment.canary.percent
        if deployment.mode == "Serverless":
            manifest = inference_service(deployment, spec.name, spec.team, namespace, trial, canary_percent=percent)
        else:
            manifest = inference_service(deployment, spec.name, spec.team, namespace, serving)
            canary = tuple(standard_canary(deployment, spec.name, spec.team, namespace, trial, percent))
    # Which training the alias follows matters only where apply trains: the local target, against a
    # live registry. A plan from git alone shows the pipeline change itself; in cloud environments KFP
    # runs the pipelines on their own schedule.
    trained_by = _trainers(ctx, spec) if ctx.live and ctx.environment == "local" else {}
    return Decision(spec, serve.alias, version, manifest, trained_by, held_back, canary)


def _trainers(ctx: DesiredContext, spec: Spec) -> dict[str, str]:
    """The team's Pipelines that register this model, each with a digest of its spec and code."""
    found = {}
    for pipeline in ctx.specs.of_kind("Pipeline"):
        if (
            pipeline.team != spec.team
            or pipeline.spec.model_name(pipeline.name, spec.team) != spec.spec.registered_model
        ):
            continue
        content = pipeline.spec.model_dump_json().encode()
        code = ctx.root / "pipelines" / str(spec.team) / pipeline.name / pipeline.spec.source
        content += code.read_bytes() if code.is_file() else b""
        found[f"pipelines/{spec.team}/{pipeline.name}"] = content_digest(content)
    return found


def _alias_body(decision: Decision) -> dict[str, Any]:
    return {
        "registeredModel": decision.spec.spec.registered_model,
        "alias": decision.alias,
        "version": decision.version,
        "trainedBy": decision.trained_by,
    }


def _registry(specs: SpecSet, environment_name: str, local_state: Path) -> ModelRegistry | None:
    """The environment's registry; None locally before anything was trained (opening SQLite would create it)."""
    uri, _ = mlflow_tracking(specs, environment_name, local_state)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    if uri.startswith(("http://", "https://")):
        _answers(uri, f"check mlflow.trackingUri in platform/environments/{environment_name}.yaml and the network")
    return ModelRegistry(uri)


def _answers(uri: str, hint: str) -> None:
    """Fail at once, and clearly, when a tracking server is not there (MLflow's client retries for minutes)."""
    # Any status will do: a proxy or auth in front may refuse /health itself.
    if processes.http_status(f"{uri.rstrip('/')}/health", timeout_s=10) is None:
        raise TargetUnavailable(f"the MLflow tracking server at {uri} did not answer", hint=hint)


def _records(target: Target) -> ResourceStore:
    """What the local target serves: the InferenceServices applied to it."""
    return ResourceStore(target.state_dir / PLANE)


@hookimpl
def shipyard_kinds() -> list[Kind]:
    return [MODEL_DEPLOYMENT]


@hookimpl
def shipyard_planes() -> list[Plane]:
    return [ModelsPlane()]


def mlflow_server_command(port: int, state: Path) -> list[str]:
    """The tracking server over the local target's own SQLite registry: runs, models and the UI."""
    folder = state / "mlflow"
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
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--workers",
        "1",
    ]


@hookimpl
def shipyard_local_services() -> list[LocalService]:
    return [
        LocalService(
            "mlflow",
            "MLflow tracking server and UI over .shipyard/local/mlflow (SQLite, local artifacts)",
            mlflow_server_command,
            health_path="/health",
            exports=lambda url: {"MLFLOW_TRACKING_URI": url},
        )
    ]
