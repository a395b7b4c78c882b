"""The pipelines worker: imports the teams' KFP code, compiles it, and runs it with the KFP local runner.

Runs in its own process (``shipyard.sdk.worker``), so team code never runs inside
the engine; ``task_compile`` is asked of a worker with a scrubbed environment (no
credentials), ``task_run`` of one with the engine's. Each pipeline module is loaded under a private name and forgotten
afterwards, so two teams' ``pipeline.py`` never see each other.

A local run carries the identity of the change it executes: every MLflow run its tasks
start is tagged with it (``MLFLOW_RUN_CONTEXT``, which MLflow adds to each new run), and
the worker's own process. Before it runs a pipeline, ``task_run`` looks for runs already
tagged so, as an apply killed mid-training leaves them: it waits for one still running,
and adopts the model versions a run registered instead of training again.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler, dsl, kubernetes
from kfp.compiler import pipeline_spec_builder
from kfp.dsl.graph_component import GraphComponent

from shipyard.sdk.errors import UserError
from shipyard.sdk.kubernetes import GPU_TAINT, POOL_LABEL
from shipyard.sdk.runtime import compiling
from shipyard.sdk.worker import team_code


@contextlib.contextmanager
def _gpu_settings(gpu: list[dict[str, Any]]) -> Iterator[set[str]]:
    """Give the named tasks their accelerator, toleration and node selector while the pipeline is built.

    KFP builds a pipeline's IR when ``@dsl.pipeline`` runs, from the tasks the function
    created; the settings are added to those tasks just before that, so teams never
    write them by hand. Yields the task names that were found.
    """
    wanted = {g["task"]: g for g in gpu}
    found: set[str] = set()
    original = pipeline_spec_builder.create_pipeline_spec

    def with_gpus(pipeline: Any, *args: Any, **kwargs: Any) -> Any:
        for name, task in pipeline.tasks.items():
            settings = wanted.get(name)
            if settings is None or task.container_spec is None:
                continue
            task.set_accelerator_type(settings["accelerator"]).set_accelerator_limit(settings["count"])
            kubernetes.add_toleration(task, **GPU_TAINT)
            kubernetes.add_node_selector(task, label_key=POOL_LABEL, label_value=settings["pool"])
            found.add(name)
        return original(pipeline, *args, **kwargs)

    pipeline_spec_builder.create_pipeline_spec = with_gpus
    try:
        yield found
    finally:
        pipeline_spec_builder.create_pipeline_spec = original


def _load(path: Path, module_name: str) -> Any:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _problem(field: str, got: str, expected: str, hint: str = "") -> dict[str, str]:
    return {"field": field, "got": got, "expected": expected, "hint": hint}


def compile_one(root: Path, item: dict[str, Any], image: str) -> dict[str, Any]:
    """Compile one pipeline to IR YAML, or say what in its spec does not fit the code.

    ``image`` is the runtime image of the environment compiled for: what the code's
    ``runtime_image()`` answers while it is imported (its ``@dsl.component`` decorators run then).
    """
    folder = root / "pipelines" / item["team"] / item["name"]
    source = folder / item["source"]
    if not source.is_file():
        return {"problems": [_problem("source", f"'{item['source']}' (no such file)", "a .py file beside the spec")]}
    with team_code(folder), compiling(image), _gpu_settings(item["gpu"]) as gpu_tasks:
        try:
            module = _load(source, f"shipyard_pipeline_{item['team']}_{item['name']}".replace("-", "_"))
        except Exception as error:  # team code: any failure is theirs to fix
            raise UserError(
                f"{source.relative_to(root)}: the pipeline code failed to import: {type(error).__name__}: {error}",
                hint=f"run `python {source.relative_to(root)}` to see the full error",
            ) from error
        pipelines = {n: v for n, v in vars(module).items() if isinstance(v, GraphComponent) and v.__module__ != "kfp"}
    function = item.get("function")
    if function is None and len(pipelines) != 1:
        names = ", ".join(sorted(pipelines)) or "none"
        return {
            "problems": [
                _problem(
                    "source",
                    f"{len(pipelines)} @dsl.pipeline functions ({names})",
                    "exactly one",
                    "name it in spec.function",
                )
            ]
        }
    if function is not None and function not in pipelines:
        return {
            "problems": [_problem("function", f"'{function}'", f"one of: {', '.join(sorted(pipelines)) or 'none'}")]
        }
    pipeline = pipelines[function or next(iter(pipelines))]
    problems = _parameter_problems(pipeline, item["parameters"], item["platform"])
    problems += [
        _problem(f"gpu[{i}].task", f"'{g['task']}'", "the name of a task in the pipeline")
        for i, g in enumerate(item["gpu"])
        if g["task"] not in gpu_tasks
    ]
    if problems:
        return {"problems": problems}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, package_path=str(out))
        return {"problems": [], "ir": out.read_text(encoding="utf-8")}


def _parameter_problems(pipeline: GraphComponent, values: dict[str, Any], platform: list[str]) -> list[dict[str, str]]:
    signature = inspect.signature(pipeline.pipeline_func)
    declared = signature.parameters
    problems = []
    for name, value in values.items():
        if name not in declared:
            problems.append(
                _problem(f"parameters.{name}", f"'{name}'", f"a parameter of the pipeline: {', '.join(declared)}")
            )
            continue
        annotation = declared[name].annotation
        kind = annotation if isinstance(annotation, type) else None
        if kind in (int, float, str, bool) and not _fits(value, kind):
            problems.append(_problem(f"parameters.{name}", f"{value!r}", f"a {kind.__name__}"))
    for name, parameter in declared.items():
        if parameter.default is inspect.Parameter.empty and name not in values and name not in platform:
            problems.append(
                _problem("parameters", f"no value for '{name}'", "a value for every parameter without a default")
            )
    return problems


def _fits(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def task_compile(root: str, pipelines: list[dict[str, Any]], image: str) -> list[dict[str, Any]]:
    return [compile_one(Path(root), item, image) for item in pipelines]


#: The MLflow tag naming the worker process that ran the pipeline (host, PID, start time): whether it still runs.
RUNNER_TAG = "shipyard.runner"
#: The tag on a change's MLflow runs once its pipeline run failed: what they registered is not adopted.
FAILED_TAG = "shipyard.pipeline.failed"
#: MLflow adds this variable's tags (JSON) to every run a process starts.
RUN_CONTEXT = "MLFLOW_RUN_CONTEXT"
_WAIT_S = 2.0


def task_run(
    ir: str,
    arguments: dict[str, Any],
    pipeline_root: str,
    identity: dict[str, str] | None = None,
    tracking_uri: str | None = None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run a compiled pipeline with the KFP local SubprocessRunner; each task is a child process.

    With an ``identity`` (the change's MLflow tags) and the ``tracking_uri`` it logs to, a run
    this change already made is found first: the versions it registered are adopted (returned
    as ``adopted``) and nothing is run again. ``tags`` go on every run beside the identity's
    (the plan, commit and pipeline digest of its provenance), without being part of it.
    """
    if identity and tracking_uri:
        try:
            earlier = _earlier_run(identity, tracking_uri)
        except Exception as error:  # MlflowException, or the connection's: the server is not there
            raise UserError(
                f"MLflow at {tracking_uri} did not answer when asked for this change's earlier runs: {error}",
                hint="start the local platform (shipyard up), or check the tracking server, then apply again",
            ) from error
        if earlier is not None:
            return {"outputs": {}, "adopted": earlier}
        ir = _with_env(ir, {RUN_CONTEXT: json.dumps(_run_context(identity | (tags or {})))})

    from kfp import components, local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root, raise_on_error=True)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "pipeline.yaml"
        path.write_text(ir, encoding="utf-8")
        pipeline = components.load_component_from_file(str(path))
    started = _log_size()
    try:
        task = pipeline(**arguments)
    except RuntimeError as error:
        if identity and tracking_uri:
            _mark_failed(identity, tracking_uri)
        raised = _last_exception(started)
        raise UserError(
            f"the pipeline run failed: {_ANSI.sub('', str(error))}" + (f" It raised {raised}" if raised else ""),
            hint="run the task's function locally to debug it, then apply again",
        ) from error
    outputs = getattr(task, "outputs", {}) or {}
    return {"outputs": {name: _describe(value) for name, value in outputs.items()}}


def _run_context(identity: dict[str, str]) -> dict[str, str]:
    """The tags of every MLflow run the pipeline's tasks start: the change's identity, and this process."""
    import psutil

    inherited = json.loads(os.environ.get(RUN_CONTEXT) or "{}")
    me = f"{socket.gethostname()} {os.getpid()} {psutil.Process().create_time()!r}"
    return {**inherited, **identity, RUNNER_TAG: me}


def _with_env(ir: str, env: dict[str, str]) -> str:
    """The IR with ``env`` set in every task's container (the local runner passes a container's env to its process)."""
    docs = [d for d in yaml.safe_load_all(ir) if d]
    for executor in docs[0].get("deploymentSpec", {}).get("executors", {}).values():
        container = executor.get("container")
        if container is None:
            continue
        kept = [e for e in container.get("env", []) if e.get("name") not in env]
        container["env"] = kept + [{"name": name, "value": value} for name, value in env.items()]
    return yaml.safe_dump_all(docs, sort_keys=False)


def _client(tracking_uri: str) -> Any | None:
    """An MLflow client of ``tracking_uri``; None where no store exists yet (a SQLite file not made)."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        return None
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri, tracking_uri)


def _runs_of(client: Any, identity: dict[str, str]) -> list[Any]:
    """The MLflow runs, in any experiment, that carry every tag of ``identity``."""
    experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    if not experiments:
        return []
    query = " and ".join(f"tags.`{name}` = '{value}'" for name, value in sorted(identity.items()))
    return list(client.search_runs(experiments, query, max_results=1000))


def _earlier_run(identity: dict[str, str], tracking_uri: str) -> dict[str, Any] | None:
    """What a run of this same change already did: the model versions it registered, or None.

    A run still going (its worker process lives: an apply's orphan on a platform where it
    could not be stopped) is waited for, never run twice. Runs whose worker is gone are
    marked KILLED; the versions they registered before it died are adopted.
    """
    client = _client(tracking_uri)
    if client is None:
        return None
    while True:
        runs = [r for r in _runs_of(client, identity) if FAILED_TAG not in r.data.tags]
        going = [r for r in runs if r.info.status in ("RUNNING", "SCHEDULED")]
        if not any(_runs_now(r.data.tags.get(RUNNER_TAG, "")) for r in going):
            break
        time.sleep(_WAIT_S)
    for run in going:
        client.set_terminated(run.info.run_id, "KILLED")
    versions = [
        {"name": v.name, "version": int(v.version), "run_id": run.info.run_id}
        for run in runs
        if run.info.status != "FAILED"
        for v in client.search_model_versions(f"run_id = '{run.info.run_id}'")
        if v.status != "FAILED_REGISTRATION"
    ]
    if not versions:
        return None
    return {"versions": sorted(versions, key=lambda v: (v["name"], v["version"]))}


def _runs_now(runner: str) -> bool:
    """Whether the worker process a run's ``RUNNER_TAG`` names still runs on this host."""
    import psutil

    host, _, rest = runner.partition(" ")
    pid, _, created = rest.partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        found = psutil.Process(int(pid))
        return bool(abs(found.create_time() - float(created)) < 0.01 and found.status() != psutil.STATUS_ZOMBIE)
    except (psutil.Error, ValueError):
        return False


def _mark_failed(identity: dict[str, str], tracking_uri: str) -> None:
    """Tag this change's runs once its pipeline run failed: a version one registered before a later task failed
    is not adopted by the next apply, which runs the pipeline again."""
    client = _client(tracking_uri)
    if client is None:
        return
    with contextlib.suppress(Exception):  # the run's own failure is what the user needs to see
        for run in _runs_of(client, identity):
            client.set_tag(run.info.run_id, FAILED_TAG, "true")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)(?::.*)?)$")


# The runner prints each task's output, tracebacks included, to this worker's log: its stderr,
# a file (see shipyard.sdk.worker). Read back through /proc, as fd 2 itself is write-only.
_LOG = "/proc/self/fd/2"


def _log_size() -> int | None:
    try:
        return os.stat(_LOG).st_size if os.path.isfile(_LOG) else None
    except OSError:
        return None


def _last_exception(start: int | None) -> str:
    """The last ``SomeError: message`` line a task's traceback wrote to the log since ``start``."""
    if start is None:
        return ""
    try:
        with open(_LOG, "rb") as log:
            log.seek(start)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    found = [m.group(1).strip() for m in map(_RAISED.match, _ANSI.sub("", text).splitlines()) if m]
    return found[-1] if found else ""


def _describe(value: Any) -> Any:
    if isinstance(value, dsl.Artifact):
        return {"uri": value.uri, "metadata": value.metadata}
    return value
