"""Models plane: which MLflow model version each environment serves through KServe, and how it gets there.

``models/<team>/<model>.yaml`` (kind ``ModelDeployment``) becomes two Resources per environment:

- ``ModelAlias``: the alias the environment serves (``@champion``) and the version it
  must point at. Git pins it for cloud environments (``serve.<env>.version``, changed by
  pull request); where git leaves it open, the newest version that passes the gates.
- ``InferenceService``: the KServe v1beta1 manifest serving that version, checked
  against the real CRD schema.

Applying a ModelAlias is a promotion: the gates are evaluated again against MLflow,
the alias moves only if they all pass, and the move is recorded as tags on the version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shipyard.planes.models import validation
from shipyard.planes.models.gates import GateFailure, evaluate
from shipyard.planes.models.registry import REJECTED_TAG, ModelRegistry
from shipyard.planes.models.render import Serving, inference_service
from shipyard.planes.models.spec import ModelDeploymentSpec
from shipyard.planes.tenancy.environment import mlflow_tracking
from shipyard.sdk import (
    Action,
    Change,
    DesiredContext,
    Diagnostic,
    Kind,
    Plane,
    Resource,
    Spec,
    Target,
    UserError,
    hookimpl,
)
from shipyard.sdk.model import Severity
from shipyard.sdk.planes import local_state_dir
from shipyard.sdk.store import ResourceStore

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


@dataclass(frozen=True)
class Decision:
    """Where one deployment's alias should point, and why not further."""

    spec: Spec
    alias: str
    version: int | None  # None: nothing to serve yet (or unresolved, when not live)
    storage_uri: str
    held_back: tuple[int, tuple[GateFailure, ...]] | None = None  # a newer version and the gates it failed


class ModelsPlane(Plane):
    name = PLANE
    order = 50

    def __init__(self) -> None:
        self._decided: dict[tuple[Path, str], tuple[DesiredContext, list[Decision]]] = {}

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        for decision in self._decide(ctx):
            spec = decision.spec
            assert spec.team is not None
            body = {
                "registeredModel": spec.spec.registered_model,
                "alias": decision.alias,
                "version": decision.version,
            }
            yield Resource(PLANE, "ModelAlias", key(spec.team, spec.name, "ModelAlias"), body, spec.source)
            if decision.version is not None or not ctx.live:
                manifest = _render(ctx, decision)
                yield Resource(
                    PLANE, "InferenceService", key(spec.team, spec.name, "InferenceService"), manifest, spec.source
                )

    def check(self, ctx: DesiredContext) -> Iterable[Diagnostic]:
        for decision in self._decide(ctx):
            spec = decision.spec
            for path, message in validation.problems(_render(ctx, decision)):
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
        cached = self._decided.get((ctx.root, ctx.environment))
        if cached is not None and cached[0].specs is ctx.specs and cached[0].live == ctx.live:
            return cached[1]
        specs = [s for s in ctx.specs.of_kind(MODEL_DEPLOYMENT.name) if ctx.environment in s.spec.serve]
        registry = _registry(ctx.specs, ctx.environment, local_state_dir(ctx.root)) if ctx.live and specs else None
        decisions = [_decision(spec, ctx.environment, registry) for spec in specs]
        self._decided[(ctx.root, ctx.environment)] = (ctx, decisions)
        return decisions

    # -- the local target -------------------------------------------------------------------------

    def observe(self, target: Target) -> Iterable[Resource]:
        if not target.is_local:
            return super().observe(target)
        ctx, decisions = self._context(target)
        records = _records(target)
        observed = [r for r in records if r.kind != "ModelAlias"]
        registry = _registry(ctx.specs, "local", target.state_dir)
        if registry is not None:
            for decision in decisions:
                spec = decision.spec
                assert spec.team is not None
                model = spec.spec.registered_model
                body = {
                    "registeredModel": model,
                    "alias": decision.alias,
                    "version": registry.alias(model, decision.alias),
                }
                observed.append(Resource(PLANE, "ModelAlias", key(spec.team, spec.name, "ModelAlias"), body))
        return observed

    def apply(self, change: Change, target: Target) -> None:
        if not target.is_local:
            super().apply(change, target)
            return
        if change.action is Action.DELETE:
            _records(target).delete(change.key)  # a removed deployment stops serving; its alias stays in MLflow
            return
        assert change.desired is not None
        ctx, decisions = self._context(target)
        planned = next(d for d in decisions if change.key.startswith(key(str(d.spec.team), d.spec.name, "")))
        # Decided again now: a pipeline applied just before may have registered the version to serve.
        registry = _registry(ctx.specs, "local", target.state_dir)
        decision = _decision(planned.spec, "local", registry)
        # The verification after apply sees what was decided now.
        self._decided[(target.root, target.name)] = (ctx, [decision if d is planned else d for d in decisions])
        if decision.version is None:
            return  # nothing registered to serve yet
        if change.kind == "ModelAlias" and registry is not None:
            promote(registry, decision.spec, decision.alias, decision.version, why="shipyard apply")
        # Serving follows the alias, also when the version was trained earlier in this apply.
        served = key(str(decision.spec.team), decision.spec.name, "InferenceService")
        _records(target).put(Resource(PLANE, "InferenceService", served, _render(ctx, decision), change.desired.source))

    def _context(self, target: Target) -> tuple[DesiredContext, list[Decision]]:
        found = self._decided.get((target.root, target.name))
        if found is None:
            raise UserError("the models plane reaches a target only after planning it", hint="run shipyard plan")
        return found


def promote(registry: ModelRegistry, spec: Spec, alias: str, version: int, why: str) -> int | None:
    """Move ``alias`` to ``version`` if it passes the spec's gates; returns the version it left."""
    model = spec.spec.registered_model
    current = registry.alias(model, alias)
    if current == version:
        return current
    failures = evaluate(
        spec.spec.gates,
        _with_team(registry.candidate(model, version), spec),
        None if current is None else _with_team(registry.candidate(model, current), spec),
    )
    if failures:
        raise PromotionRefused(
            f"{model} version {version} was not promoted to @{alias}: " + "; ".join(map(str, failures)),
            hint=f"the gates are in {spec.source.file}; @{alias} stays on "
            + ("nothing" if current is None else f"version {current}"),
        )
    return registry.move(model, alias, version, why)


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


def deployment(specs: Any, ref: str) -> Spec:
    """The ModelDeployment named ``<team>/<name>``."""
    team, _, name = ref.partition("/")
    for spec in specs.of_kind(MODEL_DEPLOYMENT.name):
        if (spec.team, spec.name) == (team, name):
            found: Spec = spec
            return found
    known = ", ".join(f"{s.team}/{s.name}" for s in specs.of_kind(MODEL_DEPLOYMENT.name)) or "none"
    raise UserError(f"no ModelDeployment '{ref}'", hint=f"deployments: {known}")


def local_registry(specs: Any, root: Path) -> ModelRegistry:
    """The local target's MLflow registry."""
    registry = _registry(specs, "local", local_state_dir(root))
    if registry is None:
        raise UserError("nothing is registered locally yet", hint="train first: shipyard apply")
    return registry


def _with_team(candidate: Any, spec: Spec) -> Any:
    # The training gate records checks as "<team>/<check>"; specs name them within the team.
    team = f"{spec.team}/"
    checks = frozenset(c.removeprefix(team) for c in candidate.data_checks)
    return replace(candidate, data_checks=checks)


def _decision(spec: Spec, environment: str, registry: ModelRegistry | None) -> Decision:
    deployment: ModelDeploymentSpec = spec.spec
    serve = deployment.serve[environment]
    model = deployment.registered_model
    unresolved = f"models:/{model}@{serve.alias}"
    if registry is None:
        return Decision(spec, serve.alias, serve.version, unresolved)
    current = registry.alias(model, serve.alias)
    version, held_back = serve.version, None
    if version is None:
        version = current
        newest = next(
            (v for v in registry.versions(model) if REJECTED_TAG not in registry.candidate(model, v).tags), None
        )
        if newest is not None and newest != current:
            failures = evaluate(
                deployment.gates,
                _with_team(registry.candidate(model, newest), spec),
                None if current is None else _with_team(registry.candidate(model, current), spec),
            )
            if failures:
                held_back = (newest, tuple(failures))
            else:
                version = newest
    if version is None:
        return Decision(spec, serve.alias, None, unresolved)
    return Decision(spec, serve.alias, version, registry.storage_uri(model, version), held_back)


def _registry(specs: Any, environment: str, local_state: Path) -> ModelRegistry | None:
    """The environment's registry; None locally before anything was trained (opening SQLite would create it)."""
    uri, _ = mlflow_tracking(specs, environment, local_state)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    return ModelRegistry(uri)


def _render(ctx: DesiredContext, decision: Decision) -> dict[str, Any]:
    spec = decision.spec
    assert spec.team is not None
    team = next((t for t in ctx.specs.of_kind("Team") if t.name == spec.team), None)
    namespace = (team.spec.namespace if team is not None else None) or spec.team
    return inference_service(
        spec.spec, spec.name, spec.team, namespace, Serving(decision.version, decision.storage_uri)
    )


def _records(target: Target) -> ResourceStore:
    """What the local target serves: the InferenceServices applied to it."""
    return ResourceStore(target.state_dir / PLANE)


@hookimpl
def shipyard_kinds() -> list[Kind]:
    return [MODEL_DEPLOYMENT]


@hookimpl
def shipyard_planes() -> list[Plane]:
    return [ModelsPlane()]
