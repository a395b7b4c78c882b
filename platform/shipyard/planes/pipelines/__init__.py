"""Pipelines plane: each team's KFP v2 pipelines, compiled, reviewed as a semantic diff, registered and run.

``pipelines/<team>/<name>/pipeline.yaml`` (kind ``Pipeline``) names the KFP code beside
it, its parameters, schedule, experiment and GPU needs. Desired state is the
compiled IR (compiled by a worker process, so team code never runs in the engine),
summarised for review. That worker starts with a scrubbed environment (``Worker(...,
scrubbed=True)``): the team's code runs during plan, on a pull request the PR author's,
and sees no credential or token of the engine's; training runs in apply go to a second
worker with the full environment.

On the local target, apply registers the version in a local pipeline registry
(``.shipyard/local/pipelines/``) and runs it with the KFP local SubprocessRunner;
schedules are recorded there, and only a cluster runs them. So a change that moves only
fields a run does not read (the schedule, the owner) is recorded without a run: which
changes run is a pure function of the reviewed Change, its field diffs
(``runs_training``), never of anything the applier finds at apply time. On a cloud
target, apply uploads the version to the environment's Kubeflow Pipelines and
keeps its recurring run in step with the schedule (``kubeflow.py``).

A local run is tagged in MLflow with the change it executes (``_identity``): an apply
killed during training leaves a run that registered its version, or was about to, and
the resumed apply adopts that version instead of registering another (``tasks.task_run``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from shipyard.planes.pipelines import images, ir
from shipyard.planes.pipelines.kubeflow import KubeflowPipelines, Schedule
from shipyard.planes.pipelines.policies import POLICIES
from shipyard.planes.pipelines.spec import PLATFORM_PARAMETERS, PipelineSpec
from shipyard.sdk import (
    Action,
    Applier,
    Change,
    DesiredContext,
    Diagnostic,
    Kind,
    Plane,
    Policy,
    Resource,
    Spec,
    SpecError,
    SpecSet,
    Target,
    Unit,
    UserError,
    content_digest,
    hookimpl,
    provenance,
)
from shipyard.sdk.files import linked, links_under
from shipyard.sdk.platform import TEAM, environment, namespace_of, team_namespace, tracking
from shipyard.sdk.runtime import IMAGES, LOCAL
from shipyard.sdk.services import TrainingInputs, node_pool_files, unknown_gpu_pool
from shipyard.sdk.store import ResourceStore
from shipyard.sdk.worker import Worker

PLANE = "pipelines"
PIPELINE = Kind(
    "Pipeline",
    PipelineSpec,
    globs=("pipelines/*/*/pipeline.yaml",),
    description="A team's Kubeflow (KFP v2) pipeline: code, parameters, schedule, GPU needs.",
)
#: The compiled IR travels in the Resource's payload for the applier, which runs exactly it;
#: the summary in its body (the IR's digest included) is what a reviewer reads and the diff compares.
COMPILED = "compiled"
#: MLflow tags naming the training a change asks for (its key, and the digest of the change): how a resumed
#: apply finds the runs it made. With the plan, the commit and the pipeline's digest they are the
#: provenance every run of a local pipeline run carries (``sdk.provenance``).
CHANGE_TAG = provenance.CHANGE
DIGEST_TAG = provenance.CHANGE_DIGEST
#: Fields of a Pipeline's body a local run does not read: a change to these alone is recorded, not run.
NOT_RUN = frozenset({"schedule", "owner"})


class PipelinesPlane(Plane):
    name = PLANE
    order = 40
    libraries = ("kfp", "kfp-kubernetes")

    def __init__(self) -> None:
        #: Imports team code (compile): no credentials reach it.
        self.team_worker = Worker("shipyard.planes.pipelines.tasks", scrubbed=True)
        #: Runs training (apply), which needs the tracking server's credentials: started when first asked.
        self.worker = Worker("shipyard.planes.pipelines.tasks")

    def warm_up(self, root: Path) -> None:
        if (root / PLANE).is_dir():
            self.team_worker.start()

    def units(self, ctx: DesiredContext) -> Sequence[Unit]:
        """One per team: its pipelines' folders (specs, code, committed IR), the pools its GPU tasks name and
        the runtime image setting (every component's image)."""
        folders: dict[str, set[str]] = {}
        for spec in ctx.specs.of_kind(PIPELINE.name):
            # The team's folder: a pipeline's code may import a module beside its own folder.
            folders.setdefault(str(spec.team), set()).add(Path(spec.source.file).parent.parent.as_posix())
        pools = node_pool_files(ctx)
        return [Unit(team, (*sorted(found), *pools, IMAGES)) for team, found in sorted(folders.items())]

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        wanted = [s for s in ctx.specs.of_kind(PIPELINE.name) if ctx.wants(s.team)]
        compiled = self.compile(ctx.root, wanted, ctx.environment) if wanted else {}
        for spec in wanted:
            assert spec.team is not None
            source = compiled[(spec.team, spec.name)]
            body: dict[str, Any] = ir.summary(source)
            pipeline: PipelineSpec = spec.spec
            body |= {
                "owner": pipeline.owner,
                "experiment": pipeline.experiment,
                "registeredModel": pipeline.model_name(spec.name, spec.team),
                "schedule": None if pipeline.schedule is None else pipeline.schedule.model_dump(by_alias=True),
                "values": dict(sorted(pipeline.parameters.items())),
            }
            yield Resource(PLANE, "Pipeline", spec.team, spec.name, body, spec.source, {COMPILED: source})

    def compile(self, root: Path, pipelines: Sequence[Spec], environment: str = LOCAL) -> dict[tuple[str, str], str]:
        """Fresh IR per (team, pipeline) for ``environment``, compiled in the worker; a spec that does not fit
        its code is a SpecError. The code's ``runtime_image()`` answers the environment's runtime image."""
        # KFP imports the pipeline's folder: a link in it could make the compiler echo any file.
        folders = sorted({(root / s.source.file).parent for s in pipelines})
        links = [d for folder in folders for d in links_under(root, folder)]
        links += filter(None, (linked(root, (root / s.source.file).parent / s.spec.source) for s in pipelines))
        if links:
            raise SpecError(list({str(d.position): d for d in links}.values()))
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
            for s in pipelines
        ]
        image = images.runtime_image(root, environment) if items else ""
        results = self.team_worker.call("compile", root=str(root), pipelines=items, image=image) if items else []
        problems = [d for spec, result in zip(pipelines, results, strict=True) for d in _problems(spec, result)]
        if problems:
            raise SpecError(problems)
        return {(str(s.team), s.name): r["ir"] for s, r in zip(pipelines, results, strict=True)}

    def check(self, ctx: DesiredContext, resources: Sequence[Resource]) -> Iterable[Diagnostic]:
        compiled = {(r.scope, r.name): r.payload[COMPILED] for r in resources}
        for spec in ctx.specs.of_kind(PIPELINE.name):
            if not ctx.wants(spec.team):
                continue
            assert spec.team is not None
            fresh = compiled[(spec.team, spec.name)]
            for component in ir.installs_at_start(fresh):
                yield spec.diagnostic(
                    ("spec", "source"),
                    got=f"component '{component}' installs packages when its container starts",
                    expected="components that run on the platform runtime image as built",
                    hint="pass install_kfp_package=False and no packages_to_install to @dsl.component",
                )
            pipeline: PipelineSpec = spec.spec
            for index, task in enumerate(pipeline.gpu):
                wrong = unknown_gpu_pool(ctx, spec, ("spec", "gpu", index, "pool"), task.pool)
                if wrong is not None:
                    yield replace(wrong, rule="pipelines/gpu-pool")
            if pipeline.compiled is not None:
                committed = ctx.root / "pipelines" / spec.team / spec.name / pipeline.compiled
                if not committed.is_file() or committed.read_text(encoding="utf-8") != _as_local(ctx, fresh):
                    yield spec.diagnostic(
                        ("spec", "compiled"),
                        got=f"{committed.relative_to(ctx.root)} differs from a fresh compile",
                        expected="the committed IR to equal the code it came from",
                        hint="run `shipyard compile` and commit the result",
                    )

    def trained_models(self, specs: SpecSet, team: str) -> list[str]:
        """``TrainedModels``: the registered models the team's pipelines register."""
        return sorted(p.spec.model_name(p.name, team) for p in specs.of_kind(PIPELINE.name) if p.team == team)

    # -- targets ----------------------------------------------------------------------------------

    def observe(self, ctx: DesiredContext, target: Target) -> Iterable[Resource]:
        if target.is_local:
            return list(_registry(target))
        server = _server(ctx.specs, target)
        teams = {namespace_of(t): t.name for t in ctx.specs.of_kind(TEAM.name)}
        resources = []
        for namespace, team in sorted(teams.items()):
            for found in server.deployed(namespace):
                body = ir.summary_of(found.pipeline_spec, found.platform_spec, found.metadata.get("ir", ""))
                body |= {k: found.metadata.get(k) for k in ("owner", "experiment", "registeredModel")}
                body |= {"schedule": found.schedule, "values": found.metadata.get("values", {})}
                resources.append(Resource(PLANE, "Pipeline", team, found.name.removeprefix(f"{team}-"), body))
        return resources

    def appliers(self, target: Target) -> Mapping[str, Applier]:
        return {"Pipeline": self._run_locally if target.is_local else _publish}

    def _run_locally(self, change: Change, ctx: DesiredContext, target: Target) -> None:
        """Keep the version, run exactly the compiled IR the change carries, then record it as applied."""
        if change.action is Action.DELETE or change.desired is None:
            _registry(target).delete(change.key)
            return
        if not runs_training(change):
            _registry(target).put(change.desired)  # a new schedule: recorded; only a cluster runs it
            return
        compiled = change.desired.payload[COMPILED]
        # The version is kept first; the pipeline counts as applied only once its run succeeds,
        # so a failed run is tried again by the next apply.
        version = (
            target.state_dir / PLANE / "versions" / change.scope / change.name / f"{content_digest(compiled)}.yaml"
        )
        version.parent.mkdir(parents=True, exist_ok=True)
        version.write_text(compiled, encoding="utf-8")
        arguments = _arguments(change, ctx, target)
        try:
            result = self.worker.call(
                "run",
                ir=compiled,
                arguments=arguments,
                pipeline_root=str(target.state_dir / PLANE / "runs"),
                identity=_identity(change, target),
                tracking_uri=tracking(ctx.specs, target).uri,
                tags={
                    provenance.PLAN: ctx.plan,
                    provenance.COMMIT: ctx.commit,
                    provenance.PIPELINE_DIGEST: content_digest(compiled),
                },
            )
        except UserError as error:
            raise UserError(f"{change.key}: {error.message}", hint=error.hint) from error
        # Applied first, then recorded: the record counts this pipeline's runs, which is part of the
        # next change's identity, so a crash between the two cannot make this change look new.
        _registry(target).put(change.desired)
        _record_run(target, change.key, content_digest(compiled), result)


def runs_training(change: Change) -> bool:
    """Whether applying ``change`` to the local target runs the pipeline; decided by the Change alone.

    A new pipeline runs; an update runs unless every field it changes is one a run does not
    read (``NOT_RUN``: the schedule, which only a cluster runs, and the owner). The plan shows
    those diffs, so what a reviewer reads is what decides.
    """
    if change.action is Action.CREATE:
        return True
    return change.action is Action.UPDATE and any(not d.path or d.path[0] not in NOT_RUN for d in change.diffs)


def _publish(change: Change, ctx: DesiredContext, target: Target) -> None:
    """A cloud environment: upload exactly the compiled IR as a version, and keep its recurring run in step."""
    server = _server(ctx.specs, target)
    namespace = team_namespace(ctx.specs, change.scope)
    pipeline_name = f"{change.scope}-{change.name}"
    if change.action is Action.DELETE or change.desired is None:
        server.remove(namespace, pipeline_name)
        return
    body = change.desired.body
    metadata = {"ir": body["ir"]} | {k: body[k] for k in ("owner", "experiment", "registeredModel", "values")}
    schedule = None
    if body["schedule"] is not None:
        kubeflow = environment(ctx.specs, target.name).kubeflow
        root = kubeflow.pipeline_root if kubeflow else None
        schedule = Schedule(
            cron=body["schedule"]["cron"],
            paused=body["schedule"]["paused"],
            experiment=body["experiment"],
            arguments=_arguments(change, ctx, target),
            pipeline_root=root.replace("{team}", change.scope) if root else None,
        )
    version = content_digest(metadata)
    server.publish(namespace, pipeline_name, change.desired.payload[COMPILED], version, metadata, schedule)


def _as_local(ctx: DesiredContext, fresh: str) -> str:
    """``fresh`` as ``shipyard compile`` writes it: the committed IR is the local environment's, so another
    environment's compile is compared with its runtime image read as the local one (the only difference)."""
    if ctx.environment == LOCAL:
        return fresh
    return fresh.replace(images.runtime_image(ctx.root, ctx.environment), images.runtime_image(ctx.root, LOCAL))


def _problems(spec: Spec, result: dict[str, Any]) -> list[Diagnostic]:
    """The worker's findings about a spec that does not fit its code, at the spec's lines."""
    problems = []
    for p in result["problems"]:
        parts = p["field"].replace("[", ".").replace("]", "").split(".")
        path = ("spec", *(int(part) if part.isdigit() else part for part in parts))
        found = spec.diagnostic(path, got=p["got"], expected=p["expected"], hint=p["hint"])
        problems.append(replace(found, rule="pipelines/compile"))
    return problems


def _server(specs: SpecSet, target: Target) -> KubeflowPipelines:
    kubeflow = environment(specs, target.name).kubeflow
    if kubeflow is None:
        raise UserError(
            f"environment '{target.name}' names no Kubeflow Pipelines server",
            hint=f"set spec.kubeflow.host in platform/environments/{target.name}.yaml",
        )
    return KubeflowPipelines(kubeflow.host)


def _arguments(change: Change, ctx: DesiredContext, target: Target) -> dict[str, Any]:
    """The planned values plus the platform's for ``target``, for the parameters the pipeline declares.

    The platform's values are addresses (where the data, the checks and the tracking server
    are), read from the target when the change runs; what to run and with which values is
    the change's own.
    """
    assert change.desired is not None
    body = change.desired.body
    platform = ctx.provider(TrainingInputs).training_inputs(ctx, target, change.scope) | {
        "experiment": body["experiment"],
        "registered_model": body["registeredModel"],
    }
    found = tracking(ctx.specs, target)
    if found.uri.startswith("sqlite:///"):
        Path(found.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    platform |= {"mlflow_tracking_uri": found.uri, "mlflow_artifact_root": found.artifact_root}
    arguments = {k: v for k, v in platform.items() if k in body["parameters"]}
    return arguments | dict(body["values"])


def _registry(target: Target) -> ResourceStore:
    return ResourceStore(target.state_dir / PLANE / "registry")


def _runs_file(target: Target) -> Path:
    return target.state_dir / PLANE / "runs.jsonl"


def _record_run(target: Target, pipeline: str, version: str, result: dict[str, Any]) -> None:
    record = {"pipeline": pipeline, "version": version, "outputs": result["outputs"]}
    if "adopted" in result:  # what an earlier run of this change registered, found instead of training again
        record["adopted"] = result["adopted"]
    with _runs_file(target).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _identity(change: Change, target: Target) -> dict[str, str]:
    """The MLflow tags naming the training this change asks for: its key, and a digest of the change.

    The digest covers what the engine's change digest covers (key, action, field diffs, desired
    body and payload), so an apply resumed after a crash, planning the same change, finds the runs
    it tagged; and how many runs of this pipeline were recorded before, so a later change that
    happens to look the same (a revert, say) trains again as an uninterrupted apply would.
    """
    assert change.desired is not None
    runs = _runs_file(target)
    before = 0
    for line in runs.read_text(encoding="utf-8").splitlines() if runs.is_file() else []:
        with contextlib.suppress(ValueError):  # a line torn by a crash mid-write
            before += json.loads(line).get("pipeline") == change.key
    digest = content_digest(
        {
            "key": change.key,
            "action": change.action.value,
            "diffs": [d.to_dict() for d in change.diffs],
            "desired": change.desired.body,
            "payload": dict(change.desired.payload),
            "runs_before": before,
        }
    )
    return {CHANGE_TAG: change.key, DIGEST_TAG: digest}


@hookimpl
def shipyard_kinds() -> list[Kind]:
    return [PIPELINE]


@hookimpl
def shipyard_planes() -> list[Plane]:
    return [PipelinesPlane()]


@hookimpl
def shipyard_policies() -> list[Policy]:
    return list(POLICIES)


@hookimpl
def shipyard_commands() -> list[Any]:
    from shipyard.planes.pipelines.commands import compile_pipelines  # click is loaded by the CLI only

    return [compile_pipelines]
