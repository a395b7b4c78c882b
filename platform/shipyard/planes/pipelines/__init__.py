"""Pipelines plane: each team's KFP v2 pipelines, compiled, reviewed as a semantic diff, registered and run.

``pipelines/<team>/<name>/pipeline.yaml`` (kind ``Pipeline``) names the KFP code beside
it, its parameters, schedule, experiment and GPU needs. Desired state is the
compiled IR (compiled by a worker process, so team code never runs in the engine),
summarised for review. On the local target, apply registers the version in a local
pipeline registry (``.shipyard/local/pipelines/``) and runs it with the KFP local
SubprocessRunner; schedules are recorded there, and only a cluster runs them. On a
cloud target, apply uploads the version to the environment's Kubeflow Pipelines and
keeps its recurring run in step with the schedule (``kubeflow.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from shipyard.planes.features import data_path, expectations, feature_store
from shipyard.planes.features.config import offline_uri, repo_config
from shipyard.planes.pipelines import ir
from shipyard.planes.pipelines.kubeflow import KubeflowPipelines, Schedule
from shipyard.planes.pipelines.spec import PLATFORM_PARAMETERS, PipelineSpec
from shipyard.planes.tenancy.environment import environment, mlflow_tracking
from shipyard.planes.tenancy.manifests import namespace_of, team_namespace
from shipyard.sdk import (
    Action,
    Change,
    DesiredContext,
    Diagnostic,
    Kind,
    Plane,
    Readings,
    Resource,
    Spec,
    SpecError,
    Target,
    UserError,
    content_digest,
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


def key(team: str, name: str) -> str:
    return f"{PLANE}/{team}/{name}"


class PipelinesPlane(Plane):
    name = PLANE
    order = 40

    def __init__(self) -> None:
        self.worker = Worker("shipyard.planes.pipelines.tasks")
        self._compiled: Readings[dict[str, str]] = Readings(PLANE)  # IR per pipeline key, for apply

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
        cached = self._compiled.get(ctx)
        if cached is not None:
            return cached
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
        return self._compiled.put(ctx, {key(str(s.team), s.name): r["ir"] for s, r in zip(specs, results, strict=True)})

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

    # -- targets ----------------------------------------------------------------------------------

    def observe(self, target: Target) -> Iterable[Resource]:
        if target.is_local:
            return list(_registry(target))
        ctx, _ = self._compiled.of(target)
        server = _server(ctx, target)
        teams = {namespace_of(t): t.name for t in ctx.specs.of_kind("Team")}
        resources = []
        for namespace, team in sorted(teams.items()):
            for found in server.deployed(namespace):
                body = ir.summary_of(found.pipeline_spec, found.platform_spec, found.metadata.get("ir", ""))
                body |= {k: found.metadata.get(k) for k in ("owner", "experiment", "registeredModel")}
                body |= {"schedule": found.schedule, "values": found.metadata.get("values", {})}
                resources.append(Resource(PLANE, "Pipeline", key(team, found.name.removeprefix(f"{team}-")), body))
        return resources

    def apply(self, change: Change, target: Target) -> None:
        ctx, pipelines = self._compiled.of(target)
        _, team, name = change.key.split("/", 2)
        if target.is_local:
            self._apply_local(change, target, ctx, pipelines)
            return
        server = _server(ctx, target)
        namespace = team_namespace(ctx.specs, team)
        if change.action is Action.DELETE:
            server.remove(namespace, f"{team}-{name}")
            return
        assert change.desired is not None
        spec = _spec(ctx, change.key)
        body = change.desired.body
        metadata = {"ir": body["ir"]} | {k: body[k] for k in ("owner", "experiment", "registeredModel", "values")}
        schedule = None
        pipeline: PipelineSpec = spec.spec
        if pipeline.schedule is not None:
            kubeflow = environment(ctx.specs, target.name).kubeflow
            root = kubeflow.pipeline_root if kubeflow else None
            schedule = Schedule(
                cron=pipeline.schedule.cron,
                paused=pipeline.schedule.paused,
                experiment=pipeline.experiment,
                arguments=_arguments(spec, ctx, target, body["parameters"]),
                pipeline_root=root.replace("{team}", team) if root else None,
            )
        version = content_digest(metadata)
        server.publish(namespace, f"{team}-{name}", pipelines[change.key], version, metadata, schedule)

    def _apply_local(self, change: Change, target: Target, ctx: DesiredContext, pipelines: dict[str, str]) -> None:
        if change.action is Action.DELETE:
            _registry(target).delete(change.key)
            return
        assert change.desired is not None
        spec = _spec(ctx, change.key)
        compiled = pipelines[change.key]
        # The version is kept first; the pipeline counts as applied only once its run succeeds,
        # so a failed run is tried again by the next apply.
        version = (
            target.state_dir / PLANE / "versions" / change.key.split("/", 1)[1] / f"{content_digest(compiled)}.yaml"
        )
        version.parent.mkdir(parents=True, exist_ok=True)
        version.write_text(compiled, encoding="utf-8")
        arguments = _arguments(spec, ctx, target, change.desired.body["parameters"])
        try:
            result = self.worker.call(
                "run", ir=compiled, arguments=arguments, pipeline_root=str(target.state_dir / PLANE / "runs")
            )
        except UserError as error:
            raise UserError(f"{change.key}: {error.message}", hint=error.hint) from error
        _record_run(target, change.key, content_digest(compiled), result)
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


def _spec(ctx: DesiredContext, pipeline: str) -> Spec:
    _, team, name = pipeline.split("/", 2)
    found = ctx.specs.named(PIPELINE.name, name, team)
    assert found is not None  # the key came from this context's desired state
    return found


def _server(ctx: DesiredContext, target: Target) -> KubeflowPipelines:
    kubeflow = environment(ctx.specs, target.name).kubeflow
    if kubeflow is None:
        raise UserError(
            f"environment '{target.name}' names no Kubeflow Pipelines server",
            hint=f"set spec.kubeflow.host in platform/environments/{target.name}.yaml",
        )
    return KubeflowPipelines(kubeflow.host)


def _arguments(spec: Spec, ctx: DesiredContext, target: Target, declared: dict[str, Any]) -> dict[str, Any]:
    """The spec's values plus the platform's for ``target``, for the parameters the pipeline declares."""
    assert spec.team is not None
    team = spec.team
    pipeline: PipelineSpec = spec.spec
    store = feature_store(ctx.specs, target.name)
    checks = [
        {
            "name": f"{team}/{c.name}",
            "path": data_path(target.root, store, team, c.spec),
            "expectations": expectations(c),
        }
        for c in ctx.specs.of_kind("DataCheck")
        if c.team == team
    ]
    offline = offline_uri(store, team)
    # A cloud run reads everything from URLs; its repo path is its own working folder.
    anchor = target.root if target.is_local else Path(".")
    platform = {
        "feature_store": json.dumps(repo_config(store, team, anchor)),
        "offline_uri": offline if "://" in offline else str(target.root / offline),
        "data_checks": json.dumps(checks),
        "experiment": pipeline.experiment,
        "registered_model": pipeline.model_name(spec.name, team),
    } | _tracking(ctx, target)
    arguments = {k: v for k, v in platform.items() if k in declared}
    return arguments | dict(pipeline.parameters)


def _tracking(ctx: DesiredContext, target: Target) -> dict[str, str]:
    uri, artifacts = mlflow_tracking(ctx.specs, target.name, target.state_dir)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return {"mlflow_tracking_uri": uri, "mlflow_artifact_root": artifacts}


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
