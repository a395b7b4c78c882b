"""The pipelines plane: compile in a worker, GPU placement from the spec, semantic summary, spec errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import Result, commit, edit, example_repo
from shipyard.engine.planner import contexts, desired_state, validate
from shipyard.engine.registry import Registry
from shipyard.planes.pipelines import COMPILED, PipelinesPlane, ir
from shipyard.sdk import Resource

SPEC = "pipelines/fraud/train/pipeline.yaml"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return example_repo(tmp_path)


def _resource(registry: Registry, root: Path) -> Resource:
    specs = validate(registry, root).specs
    ctxs = contexts(registry, root, specs, "local", target=None)
    [resource] = [r for r in desired_state(registry, ctxs) if r.plane == "pipelines"]
    return resource


def _pipeline(registry: Registry, root: Path) -> dict:
    return dict(_resource(registry, root).body)


def test_gpu_task_gets_accelerator_toleration_and_node_selector(registry: Registry, example: Path) -> None:
    train = _pipeline(registry, example)["tasks"]["train"]
    assert train["resources"]["accelerator"] == {"resourceCount": "1", "resourceType": "nvidia.com/gpu"}
    assert train["tolerations"] == [
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Equal", "value": "true"}
    ]
    assert train["nodeSelector"] == {"labels": {"shipyard.dev/pool": "gpu-a10g"}}
    # tasks the spec does not name stay off the GPU pool
    assert "tolerations" not in _pipeline(registry, example)["tasks"]["training-set"]


def test_summary_names_components_parameters_and_schedule(registry: Registry, example: Path) -> None:
    body = _pipeline(registry, example)
    assert set(body["components"]) == {"check-data", "training-set", "train", "register"}
    assert body["components"]["train"]["image"] == "ghcr.io/shipyard-dev/runtime:0.1.0"
    assert body["tasks"]["train"]["after"] == ["training-set"]
    assert body["parameters"]["max_iter"] == {
        "defaultValue": 200,
        "isOptional": True,
        "parameterType": "NUMBER_INTEGER",
    }
    assert body["schedule"] == {"cron": "0 3 * * *", "paused": False}
    assert body["values"] == {"learning_rate": 0.1, "max_depth": 6, "max_iter": 200}


def test_compile_is_deterministic(registry: Registry, example: Path) -> None:
    plane = registry.plane("pipelines")
    assert isinstance(plane, PipelinesPlane)
    first = plane.compile(example, validate(registry, example).specs.of_kind("Pipeline"))
    again = plane.compile(example, validate(registry, example).specs.of_kind("Pipeline"))
    assert first == again
    pipeline, platform = ir.documents(first[("fraud", "train")])
    assert pipeline["pipelineInfo"]["name"] == "fraud-train"
    assert "kubernetes" in platform["platforms"]
    # the applier runs exactly this IR: it travels in the Resource's payload, its digest in the body
    resource = _resource(registry, example)
    assert resource.payload[COMPILED] == first[("fraud", "train")]
    assert COMPILED not in resource.body


def test_plan_against_base_shows_exactly_theedit(shipyard: Callable[..., Result], example: Path) -> None:
    import json

    edit(example, "pipelines/fraud/train/pipeline.yaml", "max_depth: 6", "max_depth: 8")
    edit(example, "pipelines/fraud/train/pipeline.yaml", "count: 1", "count: 2")
    commit(example, "deeper trees on two GPUs")
    result = shipyard("plan", "--target", "base:HEAD~1", "--format", "json", repo=example)
    assert result.code == 0, result.err
    changes = [c for c in json.loads(result.out)["plan"]["changes"] if c["action"] != "noop"]
    assert [c["key"] for c in changes] == ["pipelines/fraud/Pipeline/train"]
    fields = {"/".join(map(str, f["path"])): (f.get("before"), f.get("after")) for f in changes[0]["diffs"]}
    before, after = fields.pop("ir")  # the version's digest moves with any change
    assert before != after
    assert fields == {
        "values/max_depth": (6, 8),
        "tasks/train/resources/accelerator/resourceCount": ("1", "2"),
    }


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("    max_depth: 6", "    max_depth: 6\n    max_leaves: 31", "parameters.max_leaves", "'max_leaves'"),
        ("max_depth: 6", "max_depth: deep", "parameters.max_depth", "expected a int"),
        ("- task: train", "- task: trainer", "gpu[0].task", "'trainer'"),
        ("source: pipeline.py", "source: missing.py", "source", "no such file"),
    ],
)
def test_spec_that_does_not_fit_the_code_points_at_the_line(
    shipyard: Callable[..., Result], example: Path, old: str, new: str, where: str, message: str
) -> None:
    edit(example, SPEC, old, new)
    result = shipyard("validate", repo=example)
    assert result.code == 0  # the YAML itself is fine; the code decides
    result = shipyard("plan", "--target", "local", repo=example)
    assert result.code == 1
    assert f"{SPEC}:" in result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert f"spec.{where}" in result.err


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "from kfp import dsl",
            "from kfp import dsl\nraise ValueError('oops')",
            "pipelines/fraud/train/pipeline.py: the pipeline code failed to import: ValueError: oops",
        ),
        (
            "@dsl.component(base_image=runtime_image(), install_kfp_package=False)\ndef register(",
            "@dsl.component(base_image=runtime_image())\ndef register(",
            "component 'register' installs packages when its container starts",
        ),
    ],
    ids=["fails to import", "installs packages at start"],
)
def test_bad_pipeline_code_is_a_user_error(
    shipyard: Callable[..., Result], example: Path, old: str, new: str, message: str
) -> None:
    edit(example, "pipelines/fraud/train/pipeline.py", old, new)
    result = shipyard("plan", "--target", "local", repo=example)
    assert result.code == 1
    assert message in result.err


def test_committed_ir_must_equal_a_fresh_compile(shipyard: Callable[..., Result], example: Path) -> None:
    edit(example, SPEC, "source: pipeline.py", "source: pipeline.py\n  compiled: pipeline.ir.yaml")
    assert shipyard("compile", repo=example).code == 0
    assert shipyard("compile", "--check", repo=example).code == 0
    committed = example / "pipelines/fraud/train/pipeline.ir.yaml"
    assert yaml.safe_load_all(committed.read_text())
    edit(example, "pipelines/fraud/train/pipeline.py", "max_iter: int = 200", "max_iter: int = 250")
    assert shipyard("compile", "--check", repo=example).code == 1
    result = shipyard("plan", "--target", "local", repo=example)
    assert result.code == 1
    assert "pipeline.ir.yaml differs from a fresh compile" in result.err


def test_a_schedule_only_edit_is_recorded_locally_without_a_training_run(
    shipyard: Callable[..., Result], example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local target runs no schedules: a changed cron is recorded, and nothing trains again."""
    import json

    from shipyard.sdk.worker import Worker

    runs: list[dict] = []
    original = Worker.call

    def call(self: Worker, method: str, **params: object) -> object:
        if self.module == "shipyard.planes.pipelines.tasks" and method == "run":
            runs.append(params)  # a training run, counted instead of run: this test is about whether one starts
            return {"outputs": {}}
        return original(self, method, **params)

    monkeypatch.setattr(Worker, "call", call)
    local = ("--target", "local", "--plane", "pipelines")
    assert shipyard("apply", *local, repo=example).code == 0
    assert len(runs) == 1

    edit(example, SPEC, 'cron: "0 3 * * *"', 'cron: "0 4 * * *"')
    planned = shipyard("plan", *local, "--format", "json", repo=example)
    assert planned.code == 0, planned.err
    [change] = [c for c in json.loads(planned.out)["plan"]["changes"] if c["action"] != "noop"]
    assert change["key"] == "pipelines/fraud/Pipeline/train"
    assert [d["path"] for d in change["diffs"]] == [["schedule", "cron"]]  # what decides: no field a run reads
    assert shipyard("apply", *local, repo=example).code == 0
    assert len(runs) == 1  # no training for a schedule
    assert shipyard("plan", *local, "--detailed-exitcode", repo=example).code == 0  # and it was recorded

    edit(example, SPEC, "max_depth: 6", "max_depth: 7")  # what the run reads: it trains
    assert shipyard("apply", *local, repo=example).code == 0
    assert len(runs) == 2
