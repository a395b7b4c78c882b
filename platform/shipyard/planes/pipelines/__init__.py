"""Pipelines plane: each team's KFP v2 pipelines, compiled, reviewed as a semantic diff, registered and run.

``pipelines/<team>/<name>/pipeline.yaml`` (kind ``Pipeline``) names the KFP code beside
it, its parameters, schedule, experiment and GPU needs. Desired state is the
compiled IR (compiled by a worker process, so team code never runs in the engine),
summarised for review. On the local target, apply registers the version in a local
pipeline registry (``.shipyard/local/pipelines/``) and runs it with the KFP local
SubprocessRunner; schedules are recorded there, and only a cluster runs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from shipyard.planes.features import data_path, feature_store
from shipyard.planes.features.config import offline_uri, repo_config
from shipyard.planes.pipelines import ir
from shipyard.planes.pipelines.spec import PLATFORM_PARAMETERS, PipelineSpec
from shipyard.sdk import (
    Action,
    Change,
    DesiredContext,
    Diagnostic,
    Kind,
    Plane,
    Resource,
    Spec,
    SpecError,
    Target,
    UserError,
    hookimpl,
)
from shipyard.sdk.store import ResourceStore
from shipyard.sdk.worker import Worker

PLANE = "pipelines"
PIPELINE = Kind(
    "Pipeline",
    PipelineSpec,
    globs=("pipelines/*/*/pipeline.yaml",),
    description="A team's Kubeflow (KFP v2) pipeline: code, parameters, schedule, GPU needs.",
)
WORKER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "FEAST_USAGE": "False", "GX_ANALYTICS_ENABLED": "False"}


def key(team: str, name: str) -> str:
    return f"{PLANE}/{team}/{name}"


class PipelinesPlane(Plane):
    name = PLANE
    order = 40

    def __init__(self) -> None:
        self.worker = Worker("shipyard.planes.pipelines.tasks", env=WORKER_ENV)
        # (root, environment) → the context last compiled and its IR per pipeline key, for apply
        self._compiled: dict[tuple[Path, str], tuple[DesiredContext, dict[str, str]]] = {}

    def warm_up(self, root: Path) -> None:
        if (root / PLANE).is_dir():
            self.worker.start()

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        compiled = self._compile(ctx)
        for spec in ctx.specs.of_kind(PIPELINE.name):
            assert spec.team is not None
            body: dict[str, Any] = ir.summary(compiled[key(spec.team, spec.name)])
            pipeline: PipelineSpec = spec.spec
            body |= {
                "owner": pipeline.owner,
                "experiment": pipeline.experiment,
                "registeredModel": pipeline.registered_model,
                "schedule": None if pipeline.schedule is None else pipeline.schedule.model_dump(by_alias=True),
                "values": dict(sorted(pipeline.parameters.items())),
            }
            yield Resource(PLANE, "Pipeline", key(spec.team, spec.name), body, spec.source)

    def _compile(self, ctx: DesiredContext) -> dict[str, str]:
        cached = self._compiled.get((ctx.root, ctx.environment))
        if cached is not None and cached[0].specs is ctx.specs:
            return cached[1]
        specs = ctx.specs.of_kind(PIPELINE.name)
        items = [
            {
                "team": s.team,
                "name": s.name,
                "source": s.spec.source,
                "function": s.spec.function,
                "parameters": s.spec.parameters,
                "gpu": [g.model_dump() for g in s.spec.gpu],
                "platform": sorted(PLATFORM_PARAMETERS),
            }
            for s in specs
        ]
        results = self.worker.call("compile", root=str(ctx.root), pipelines=items) if items else []
        problems = [d for spec, result in zip(specs, results, strict=True) for d in _problems(spec, result)]
        if problems:
            raise SpecError(problems)
        compiled = {key(str(s.team), s.name): r["ir"] for s, r in zip(specs, results, strict=True)}
        self._compiled[(ctx.root, ctx.environment)] = (ctx, compiled)
        return compiled

    def check(self, ctx: DesiredContext) -> Iterable[Diagnostic]:
        compiled = self._compile(ctx)
        for spec in ctx.specs.of_kind(PIPELINE.name):
            assert spec.team is not None
            fresh = compiled[key(spec.team, spec.name)]
            for component in ir.installs_at_start(fresh):
                yield spec.diagnostic(
                    ("spec", "source"),
                    got=f"component '{component}' installs packages when its container starts",
                    expected="components that run on the platform runtime image as built",
                    hint="pass install_kfp_package=False and no packages_to_install to @dsl.component",
                )
            pipeline: PipelineSpec = spec.spec
            if pipeline.compiled is not None:
                committed = ctx.root / "pipelines" / spec.team / spec.name / pipeline.compiled
                if not committed.is_file() or committed.read_text(encoding="utf-8") != fresh:
                    yield spec.diagnostic(
                        ("spec", "compiled"),
                        got=f"{committed.relative_to(ctx.root)} differs from a fresh compile",
                        expected="the committed IR to equal the code it came from",
                        hint="run `shipyard compile` and commit the result",
                    )

    def compiled(self, ctx: DesiredContext) -> dict[str, str]:
        """Fresh IR per pipeline key, for ``shipyard compile``."""
        return self._compile(ctx)

    # -- the local target -------------------------------------------------------------------------

    def observe(self, target: Target) -> Iterable[Resource]:
        if not target.is_local:
            return super().observe(target)
        return list(_registry(target))

    def apply(self, change: Change, target: Target) -> None:
        if not target.is_local:
            super().apply(change, target)
            return
        if change.action is Action.DELETE:
            _registry(target).delete(change.key)
            return
        assert change.desired is not None
        ctx, pipelines = self._compiled[(target.root, "local")]
        spec = next(s for s in ctx.specs.of_kind(PIPELINE.name) if key(str(s.team), s.name) == change.key)
        compiled = pipelines[change.key]
        # The version is kept first; the pipeline counts as applied only once its run succeeds,
        # so a failed run is tried again by the next apply.
        version = target.state_dir / PLANE / "versions" / change.key.split("/", 1)[1] / f"{ir.digest(compiled)}.yaml"
        version.parent.mkdir(parents=True, exist_ok=True)
        version.write_text(compiled, encoding="utf-8")
        arguments = _arguments(spec, ctx, target, change.desired.body["parameters"])
        try:
            result = self.worker.call(
                "run", ir=compiled, arguments=arguments, pipeline_root=str(target.state_dir / PLANE / "runs")
            )
        except UserError as error:
            raise UserError(f"{change.key}: {error.message}", hint=error.hint) from error
        _record_run(target, change.key, ir.digest(compiled), result)
        _registry(target).put(change.desired)


def _problems(spec: Spec, result: dict[str, Any]) -> list[Diagnostic]:
    """The worker's findings about a spec that does not fit its code, at the spec's lines."""
    problems = []
    for p in result["problems"]:
        parts = p["field"].replace("[", ".").replace("]", "").split(".")
        path = ("spec", *(int(part) if part.isdigit() else part for part in parts))
        found = spec.diagnostic(path, got=p["got"], expected=p["expected"], hint=p["hint"])
        problems.append(replace(found, rule="pipelines/compile"))
    return problems


def _arguments(spec: Spec, ctx: DesiredContext, target: Target, declared: dict[str, Any]) -> dict[str, Any]:
    """The spec's values plus the platform's, for the parameters the pipeline declares."""
    assert spec.team is not None
    team = spec.team
    pipeline: PipelineSpec = spec.spec
    store = feature_store(ctx.specs, "local")
    tracking = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow_dir = target.state_dir / "mlflow"
    checks = [
        {
            "name": f"{team}/{c.name}",
            "path": data_path(target.root, store, team, c.spec),
            "expectations": [e.model_dump(mode="json", by_alias=True) for e in c.spec.expectations],
        }
        for c in ctx.specs.of_kind("DataCheck")
        if c.team == team
    ]
    platform = {
        "feature_store": json.dumps(repo_config(store, team, target.root)),
        "offline_uri": str(target.root / offline_uri(store, team)),
        "data_checks": json.dumps(checks),
        "mlflow_tracking_uri": tracking or f"sqlite:///{mlflow_dir / 'mlflow.db'}",
        "mlflow_artifact_root": "" if tracking else str(mlflow_dir / "artifacts"),
        "experiment": pipeline.experiment,
        "registered_model": pipeline.registered_model or f"{team}-{spec.name}",
    }
    if not tracking:
        mlflow_dir.mkdir(parents=True, exist_ok=True)
    arguments = {k: v for k, v in platform.items() if k in declared}
    return arguments | dict(pipeline.parameters)


def _registry(target: Target) -> ResourceStore:
    return ResourceStore(target.state_dir / PLANE / "registry")


def _record_run(target: Target, pipeline: str, version: str, result: dict[str, Any]) -> None:
    runs = target.state_dir / PLANE / "runs.jsonl"
    with runs.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"pipeline": pipeline, "version": version, "outputs": result["outputs"]}) + "\n")


@hookimpl
def shipyard_kinds() -> list[Kind]:
    return [PIPELINE]


@hookimpl
def shipyard_planes() -> list[Plane]:
    return [PipelinesPlane()]
