"""The pipelines worker: imports the teams' KFP code, compiles it, and runs it with the KFP local runner.

Runs in its own process (``shipyard.sdk.worker``), so team code never runs inside
the engine. Each pipeline module is loaded under a private name and forgotten
afterwards, so two teams' ``pipeline.py`` never see each other.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kfp import compiler, dsl, kubernetes
from kfp.compiler import pipeline_spec_builder
from kfp.dsl.graph_component import GraphComponent

from shipyard.sdk.errors import UserError
from shipyard.sdk.kubernetes import GPU_TAINT, POOL_LABEL
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


def compile_one(root: Path, item: dict[str, Any]) -> dict[str, Any]:
    """Compile one pipeline to IR YAML, or say what in its spec does not fit the code."""
    folder = root / "pipelines" / item["team"] / item["name"]
    source = folder / item["source"]
    if not source.is_file():
        return {"problems": [_problem("source", f"'{item['source']}' (no such file)", "a .py file beside the spec")]}
    with team_code(folder), _gpu_settings(item["gpu"]) as gpu_tasks:
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


def task_compile(root: str, pipelines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [compile_one(Path(root), item) for item in pipelines]


def task_run(ir: str, arguments: dict[str, Any], pipeline_root: str) -> dict[str, Any]:
    """Run a compiled pipeline with the KFP local SubprocessRunner; each task is a child process."""
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
        raised = _last_exception(started)
        raise UserError(
            f"the pipeline run failed: {_ANSI.sub('', str(error))}" + (f" It raised {raised}" if raised else ""),
            hint="run the task's function locally to debug it, then apply again",
        ) from error
    outputs = getattr(task, "outputs", {}) or {}
    return {"outputs": {name: _describe(value) for name, value in outputs.items()}}


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
