"""The cloud adapters against servers on 127.0.0.1 that answer the real API shapes.

- pipelines: ``kfp.Client`` against a Kubeflow Pipelines v2beta1 API server (tests/servers);
- features: Feast's S3 registry and DynamoDB online store against moto's server.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from conftest import Result, edit, example_repo
from servers.kubeflow_api import State, kubeflow_api

PLACEHOLDER_HOST = "https://kubeflow.dev.shipyard.internal/pipeline"


@pytest.fixture
def kubeflow(tmp_path: Path, cloud_state: str) -> Iterator[tuple[Path, State]]:
    """The example repo with its dev environment pointing at a loopback Kubeflow Pipelines API (its state in moto)."""
    with kubeflow_api() as (url, state):
        root = example_repo(tmp_path)
        edit(root, "platform/environments/dev.yaml", PLACEHOLDER_HOST, url)
        yield root, state


def _plan(shipyard, root: Path, target: str, plane: str) -> Result:
    return shipyard("plan", "-t", target, "--plane", plane, "--format", "json", repo=root)


def _changes(result: Result) -> dict[str, dict]:
    assert result.code in (0, 2), result.err
    return {c["key"]: c for c in json.loads(result.out)["plan"]["changes"] if c["action"] != "noop"}


def _fields(change: dict) -> list[tuple[str, object, object]]:
    return [(".".join(map(str, d["path"])), d["before"], d["after"]) for d in change["diffs"]]


def _apply(shipyard, root: Path, target: str, plane: str) -> Result:
    result = shipyard("apply", "-t", target, "--plane", plane, "--yes", repo=root)
    assert result.code == 0, result.err
    return result


def _current_version(state: State) -> dict:
    return max(state.versions.values(), key=lambda v: v["created_at"])


def test_a_pipeline_is_uploaded_with_its_recurring_run_and_then_converges(kubeflow, shipyard) -> None:
    root, state = kubeflow
    assert set(_changes(_plan(shipyard, root, "dev", "pipelines"))) == {"pipelines/fraud/Pipeline/train"}

    _apply(shipyard, root, "dev", "pipelines")

    [pipeline] = state.pipelines.values()
    assert (pipeline["display_name"], pipeline["namespace"]) == ("fraud-train", "fraud")
    version = _current_version(state)
    assert set(version["pipeline_spec"]) == {"pipeline_spec", "platform_spec"}  # the GPU task's placement
    [run] = state.recurring_runs.values()
    assert run["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"  # KFP's cron starts with seconds
    assert run["mode"] == "ENABLE"
    assert run["pipeline_version_reference"]["pipeline_version_id"] == version["pipeline_version_id"]
    assert run["runtime_config"]["pipeline_root"] == "s3://shipyard-dev-kfp/fraud"
    parameters = run["runtime_config"]["parameters"]
    assert parameters["mlflow_tracking_uri"] == "https://mlflow.dev.shipyard.internal"
    assert parameters["max_depth"] == 6
    assert json.loads(parameters["feature_store"])["registry"]["path"] == (
        "s3://shipyard-dev-feast-registry/fraud/registry.db"
    )
    [experiment] = state.experiments.values()
    assert (experiment["display_name"], experiment["namespace"]) == ("fraud", "fraud")

    calls = len(state.calls)
    assert _changes(_plan(shipyard, root, "dev", "pipelines")) == {}
    assert not any(c.startswith(("POST", "DELETE")) for c in state.calls[calls:])  # observing writes nothing


def test_a_parameter_change_uploads_a_version_and_moves_the_recurring_run(kubeflow, shipyard) -> None:
    root, state = kubeflow
    _apply(shipyard, root, "dev", "pipelines")
    first = _current_version(state)
    edit(root, "pipelines/fraud/train/pipeline.yaml", "max_depth: 6", "max_depth: 8")

    changes = _changes(_plan(shipyard, root, "dev", "pipelines"))
    assert _fields(changes["pipelines/fraud/Pipeline/train"]) == [("values.max_depth", 6, 8)]
    _apply(shipyard, root, "dev", "pipelines")

    second = _current_version(state)
    assert second["pipeline_version_id"] != first["pipeline_version_id"]
    assert len(state.versions) == 2  # the old version stays, for history
    [run] = state.recurring_runs.values()
    assert run["pipeline_version_reference"]["pipeline_version_id"] == second["pipeline_version_id"]
    assert run["runtime_config"]["parameters"]["max_depth"] == 8

    # Going back re-uses the first content's version name and makes it current again.
    edit(root, "pipelines/fraud/train/pipeline.yaml", "max_depth: 8", "max_depth: 6")
    _apply(shipyard, root, "dev", "pipelines")
    assert len(state.versions) == 2
    assert _current_version(state)["display_name"] == first["display_name"]
    assert _changes(_plan(shipyard, root, "dev", "pipelines")) == {}


def test_pausing_a_schedule_disables_the_recurring_run_without_a_new_version(kubeflow, shipyard) -> None:
    root, state = kubeflow
    _apply(shipyard, root, "dev", "pipelines")
    edit(root, "pipelines/fraud/train/pipeline.yaml", 'cron: "0 3 * * *"', 'cron: "0 3 * * *"\n    paused: true')

    changes = _changes(_plan(shipyard, root, "dev", "pipelines"))
    assert _fields(changes["pipelines/fraud/Pipeline/train"]) == [("schedule.paused", False, True)]
    _apply(shipyard, root, "dev", "pipelines")

    assert len(state.versions) == 1
    [run] = state.recurring_runs.values()
    assert run["mode"] == "DISABLE"


def test_a_removed_pipeline_is_deleted_with_its_versions_and_schedule(kubeflow, shipyard) -> None:
    root, state = kubeflow
    _apply(shipyard, root, "dev", "pipelines")
    shutil.rmtree(root / "pipelines" / "fraud" / "train")

    changes = _changes(_plan(shipyard, root, "dev", "pipelines"))
    assert changes["pipelines/fraud/Pipeline/train"]["action"] == "delete"
    _apply(shipyard, root, "dev", "pipelines")

    assert (state.pipelines, state.versions, state.recurring_runs) == ({}, {}, {})


def test_an_unreachable_kubeflow_is_a_clear_error(tmp_path: Path, shipyard) -> None:
    root = example_repo(tmp_path)
    with kubeflow_api() as (url, _):
        closed = url  # the port is free again once the server stops
    edit(root, "platform/environments/dev.yaml", PLACEHOLDER_HOST, closed)

    result = shipyard("plan", "-t", "dev", "--plane", "pipelines", repo=root)

    assert result.code == 1
    assert f"Kubeflow Pipelines at {closed} did not answer" in result.err
    assert "Traceback" not in result.err


def test_an_environment_without_kubeflow_says_what_to_set(tmp_path: Path, shipyard) -> None:
    root = example_repo(tmp_path)
    edit(root, "platform/environments/dev.yaml", f"  kubeflow:\n    host: {PLACEHOLDER_HOST}\n", "")
    edit(root, "platform/environments/dev.yaml", "    pipelineRoot: s3://shipyard-dev-kfp/{team}\n", "")

    result = shipyard("plan", "-t", "dev", "--plane", "pipelines", repo=root)

    assert result.code == 1
    assert "environment 'dev' names no Kubeflow Pipelines server" in result.err
    assert "spec.kubeflow.host" in result.err


def test_an_unknown_plane_is_named(tmp_path: Path, shipyard) -> None:
    result = shipyard("plan", "--plane", "pipeline", repo=example_repo(tmp_path))
    assert result.code == 1
    assert "unknown plane 'pipeline'" in result.err
    assert "pipelines" in result.err


# -- Feast on S3 and DynamoDB ---------------------------------------------------------------------


def test_feast_objects_are_applied_to_an_s3_registry_and_dynamodb(cloud_state: str, tmp_path: Path, shipyard) -> None:
    boto3.client("s3").create_bucket(Bucket="shipyard-prod-feast-registry")  # the infra plane's bucket
    root = example_repo(tmp_path)

    planned = _changes(_plan(shipyard, root, "prod", "features"))
    assert set(planned) == {
        "features/fraud/Entity/user",
        "features/fraud/DataSource/user_stats",
        "features/fraud/FeatureView/user_stats",
        "features/fraud/FeatureService/fraud_scorer",
    }
    _apply(shipyard, root, "prod", "features")

    objects = [o.key for o in boto3.resource("s3").Bucket("shipyard-prod-feast-registry").objects.all()]
    assert objects == ["fraud/registry.db"]
    assert boto3.client("dynamodb").list_tables()["TableNames"] == ["fraud.user_stats"]
    assert _changes(_plan(shipyard, root, "prod", "features")) == {}

    edit(root, "features/fraud/features.py", "ttl=timedelta(days=2)", "ttl=timedelta(days=3)")
    [change] = _changes(_plan(shipyard, root, "prod", "features")).values()
    assert change["key"] == "features/fraud/FeatureView/user_stats"
    assert _fields(change) == [("ttl", "172800s", "259200s")]


def test_a_missing_registry_bucket_is_a_clear_error(aws: str, tmp_path: Path, shipyard) -> None:
    root = example_repo(tmp_path)

    result = shipyard("plan", "-t", "prod", "--plane", "features", repo=root)

    assert result.code == 1
    assert "cannot read the Feast registry at s3://shipyard-prod-feast-registry/fraud/registry.db" in result.err
    assert "Traceback" not in result.err
