"""End to end on the local target: features applied and materialized, the training pipeline run with the
KFP local runner, and the model version found in a real MLflow tracking server on 127.0.0.1.

The server is the local platform's own (started into the repo's process table, as `up` does), so every
command finds it the same way. Each test asks for the platform as it needs it (`applied`: services up,
everything applied) and leaves the registry as it found it where it adds versions: any order passes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import commit, edit, example_repo
from shipyard.cli import main
from shipyard.engine.local import endpoints, start_services
from shipyard.engine.registry import discover
from shipyard.planes.models.serving.local import LocalServing, deployments
from shipyard.sdk import processes
from shipyard.sdk.planes import local_state_dir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = example_repo(tmp_path_factory.mktemp("local"))
    # These tests are about requests served and versions moved. On a 2-core host running the suite on
    # both cores, a canary's p95 is the machine's load, not the model's: the latency verdict is
    # tested on its own figures (test_canary_analysis.py), and here it only stops a real regression.
    edit(root, "models/fraud/fraud-scorer.yaml", "maxLatencyRatio: 1.5", "maxLatencyRatio: 4.0")
    commit(root, "a latency limit for a busy test host")
    yield root
    main(["--repo", str(root), "down"])  # also after a failed test: no server outlives the module


@pytest.fixture
def applied(repo: Path) -> Path:
    """The local platform up and every change applied: trains the first time, then finds nothing to do."""
    start_services(discover(), repo)  # the MLflow server, into this repo's process table
    assert main(["--repo", str(repo), "seed"]) == 0
    assert main(["--repo", str(repo), "apply", "--target", "local"]) == 0
    return repo


@pytest.fixture
def mlflow_server(applied: Path) -> str:
    return endpoints(discover(), local_state_dir(applied))["mlflow"]


def _versions(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/model-versions/search?filter=name%3D%27fraud-scorer%27") as r:
        return json.load(r).get("model_versions", [])


def test_training_registers_a_model_version_with_its_metrics(applied: Path, mlflow_server: str) -> None:
    version = next(v for v in _versions(mlflow_server) if v["version"] == "1")  # the pipeline's first run
    with urllib.request.urlopen(f"{mlflow_server}/api/2.0/mlflow/runs/get?run_id={version['run_id']}") as r:
        run = json.load(r)["run"]
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert metrics["roc_auc"] > 0.7, metrics  # the synthetic fraud signal is learnable
    assert metrics["train_rows"] > 1000
    assert params == {"max_iter": "200", "learning_rate": "0.1", "max_depth": "6"}


def test_features_are_materialized_into_the_online_store(applied: Path) -> None:
    from feast import FeatureStore, RepoConfig

    from shipyard.engine.planner import validate
    from shipyard.engine.registry import discover
    from shipyard.planes.features.config import repo_config

    specs = validate(discover(), applied).specs
    store_spec = next(s.spec for s in specs.of_kind("FeatureStore") if s.name == "local")
    store = FeatureStore(config=RepoConfig(**repo_config(store_spec, "fraud", applied)), repo_path=str(applied))
    online = store.get_online_features(
        features=store.get_feature_service("fraud_scorer"), entity_rows=[{"user_id": 1000}, {"user_id": 1001}]
    ).to_dict()
    assert online["user_id"] == [1000, 1001]
    assert all(v is not None and v > 0 for v in online["txn_count_7d"]), online


def test_applying_again_changes_nothing_and_trains_nothing(applied: Path, mlflow_server: str) -> None:
    before = len(_versions(mlflow_server))
    assert main(["--repo", str(applied), "plan", "--target", "local", "--detailed-exitcode"]) == 0
    assert main(["--repo", str(applied), "apply", "--target", "local"]) == 0
    assert len(_versions(mlflow_server)) == before


# -- serving: the promoted version behind a stable loopback URL --------------------------------------

MODEL = "fraud-scorer"


def _served(root: Path) -> LocalServing:
    [served] = deployments(local_state_dir(root))
    return served


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _rows(mlflow_server: str) -> list[dict[str, float]]:
    """Two transactions, one ordinary and one the fraud signal would flag, in the model's own columns."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server, mlflow_server)
    run = client.get_run(client.get_model_version_by_alias(MODEL, "champion").run_id)
    features = run.data.tags["features"].split(",")
    return [dict.fromkeys(features, 1.0), dict.fromkeys(features, 5000.0)]


def _champion(mlflow_server: str) -> int:
    from mlflow import MlflowClient

    return int(MlflowClient(mlflow_server, mlflow_server).get_model_version_by_alias(MODEL, "champion").version)


def _register_like_the_champion(mlflow_server: str, model_code: Path | None = None) -> int:
    """A new version with the champion's metrics, checks and evaluation set: the champion's model again,
    or the pyfunc model in ``model_code`` (MLflow's models-from-code)."""
    import mlflow
    import mlflow.artifacts
    import mlflow.data
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    client = MlflowClient(mlflow_server, mlflow_server)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    run = client.get_run(champion.run_id)
    uri = f"models:/{MODEL}/{champion.version}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # not set_tracking_uri: that would outlive the test
        signature = get_model_info(uri).signature
        with mlflow.start_run(experiment_id=run.info.experiment_id):
            mlflow.log_metrics(run.data.metrics)
            # Its tags, the pipeline run's provenance among them: a version as a Shipyard pipeline run makes one.
            mlflow.set_tags({k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")})
            holdout = mlflow.data.from_pandas(pd.DataFrame({"is_fraud": [0, 1]}), name="fraud-holdout")
            mlflow.log_input(holdout, context="evaluation")
            with tempfile.TemporaryDirectory() as scratch:
                artifacts = {}
                if model_code is None:  # the champion's model again: its code and its estimator, logged anew
                    files = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=scratch))
                    model_code = files / "fraud_probability.py"
                    artifacts = {"estimator": str(next(files.rglob("estimator.pkl")))}
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(model_code),
                    artifacts=artifacts or None,
                    registered_model_name=MODEL,
                    signature=signature,
                )
    return int(info.registered_model_version)


def _apply(root: Path) -> int:
    return main(["--repo", str(root), "apply", "--target", "local"])


def _reject(mlflow_server: str, *versions: int) -> None:
    """Keep versions a test registered out of the other tests' way (never promoted automatically)."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server, mlflow_server)
    for version in versions:
        client.set_model_version_tag(MODEL, str(version), "shipyard.rejected", "registered by a test")


def test_the_champion_is_served_over_http_v1_and_v2(applied: Path, mlflow_server: str) -> None:
    served = _served(applied)
    running = served.serving()
    assert running is not None
    assert running.version == _champion(mlflow_server)
    assert served.url is not None
    rows = _rows(mlflow_server)

    with urllib.request.urlopen(f"{served.url}/v2/models/{MODEL}/ready") as ready:
        assert ready.status == 200
    columns = list(rows[0])
    v2 = {"inputs": [{"name": c, "shape": [2], "datatype": "FP64", "data": [r[c] for r in rows]} for c in columns]}
    status, answer = _post(f"{served.url}/v2/models/{MODEL}/infer", v2)
    assert status == 200, answer
    [output] = answer["outputs"]
    assert output["shape"] == [2]
    # The fraud probability of each transaction, not a 0/1 class at a 0.5 threshold.
    assert all(0.0 < p < 1.0 for p in output["data"]), output["data"]
    assert answer["id"]  # given even though the request had none

    status, answer = _post(f"{served.url}/v1/models/{MODEL}:predict", {"instances": rows})
    assert (status, answer["predictions"]) == (200, output["data"])

    status, answer = _post(f"{served.url}/v1/models/{MODEL}:predict", {"instances": [{"amount": "lots"}]})
    assert status == 400, answer  # a caller's mistake, not a server error


def test_a_version_failing_a_gate_is_refused_with_the_gate_named(
    applied: Path, mlflow_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    champion = _champion(mlflow_server)
    worse = _register_like_the_champion(mlflow_server)
    client = MlflowClient(mlflow_server, mlflow_server)
    run_id = client.get_model_version(MODEL, str(worse)).run_id
    client.log_metric(run_id, "roc_auc", 0.5)
    try:
        code = main(["--repo", str(applied), "promote", "fraud/fraud-scorer", "--version", str(worse)])
        assert code == 1
        assert f"gate 'roc_auc >= 0.75' failed: version {worse} has roc_auc = 0.5" in capsys.readouterr().err
        # apply holds it back with a warning and serves the champion still
        assert main(["--repo", str(applied), "plan", "--target", "local", "--detailed-exitcode"]) == 0
        assert _champion(mlflow_server) == champion
    finally:
        _reject(mlflow_server, worse)


def test_a_reviewed_plan_is_refused_when_a_better_version_appears_before_apply(
    applied: Path, mlflow_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plan promotes version N; N+1 is registered out of band; applying the reviewed plan promotes neither."""
    champion = _champion(mlflow_server)
    planned = _register_like_the_champion(mlflow_server)
    newer = None
    try:
        reviewed = tmp_path / "plan.json"
        assert main(["--repo", str(applied), "plan", "--out", str(reviewed)]) == 0
        changes = json.loads(reviewed.read_text())["plan"]["changes"]
        [alias] = [c for c in changes if c["kind"] == "ModelAlias"]
        assert (alias["action"], alias["desired"]["body"]["version"]) == ("update", planned)
        newer = _register_like_the_champion(mlflow_server)
        capsys.readouterr()
        assert main(["--repo", str(applied), "apply", "--plan", str(reviewed)]) == 1
        err = capsys.readouterr().err
        assert "is stale" in err
        assert "models/fraud/ModelAlias/fraud-scorer" in err
        assert _champion(mlflow_server) == champion  # neither the version reviewed nor the newer one
    finally:
        _reject(mlflow_server, planned, *([newer] if newer else []))


def test_a_better_version_rolls_out_without_one_failed_request(applied: Path, mlflow_server: str) -> None:
    served = _served(applied)
    url = f"{served.url}/v1/models/{MODEL}:predict"
    body = {"instances": _rows(mlflow_server)}
    better = _register_like_the_champion(mlflow_server)
    failures: list[object] = []
    answered = 0
    done = threading.Event()

    def traffic() -> None:
        nonlocal answered
        while not done.is_set():
            try:
                status, answer = _post(url, body)
            except OSError as error:  # refused or reset: what a gap in serving looks like
                failures.append(repr(error))
                continue
            if status != 200:
                failures.append((status, answer))
            answered += 1
            time.sleep(0.005)  # a steady caller, not one that takes both cores from the servers

    caller = threading.Thread(target=traffic)
    caller.start()
    try:
        assert _apply(applied) == 0  # canary (10 %), analysis, promotion, then all traffic
    finally:
        done.set()
        caller.join()

    assert failures == []
    assert answered > 50
    assert _champion(mlflow_server) == better
    running = _served(applied).serving()
    assert running is not None
    assert running.version == better
    assert _served(applied).url == served.url  # the URL stayed


def test_a_canary_returning_errors_is_rolled_back_and_the_champion_stays(
    applied: Path, mlflow_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    champion = _champion(mlflow_server)
    code = tmp_path / "broken_model.py"
    code.write_text(
        "import mlflow.pyfunc\n"
        "from mlflow.models import set_model\n\n"
        "class Broken(mlflow.pyfunc.PythonModel):\n"
        "    def predict(self, context, model_input):\n"
        "        raise RuntimeError('feature store timeout')\n\n"
        "set_model(Broken())\n"
    )
    broken = _register_like_the_champion(mlflow_server, model_code=code)

    assert _apply(applied) == 3  # a failed apply
    err = capsys.readouterr().err
    assert f"{MODEL} version {broken} was rolled back after its canary (10% of traffic)" in err
    assert "error rate 100.0% > 1.0%" in err

    assert _champion(mlflow_server) == champion
    tags = MlflowClient(mlflow_server, mlflow_server).get_model_version(MODEL, str(broken)).tags
    assert tags["shipyard.rejected"].startswith("canary: error rate")
    running = _served(applied).serving()
    assert running is not None
    assert running.version == champion
    status, _ = _post(f"{_served(applied).url}/v1/models/{MODEL}:predict", {"instances": _rows(mlflow_server)})
    assert status == 200
    # the rejected version is not tried again
    assert main(["--repo", str(applied), "plan", "--target", "local", "--detailed-exitcode"]) == 0


def test_a_killed_model_server_is_planned_and_started_again(applied: Path, mlflow_server: str) -> None:
    served = _served(applied)
    running = served.serving()
    assert running is not None
    os.kill(running.process.pid, signal.SIGKILL)
    assert main(["--repo", str(applied), "status"]) == 1  # it shows as exited
    assert main(["--repo", str(applied), "plan", "--target", "local", "--detailed-exitcode"]) == 2
    assert _apply(applied) == 0
    again = _served(applied).serving()
    assert again is not None
    assert (again.version, again.process.pid != running.process.pid) == (running.version, True)
    status, _ = _post(f"{served.url}/v1/models/{MODEL}:predict", {"instances": _rows(mlflow_server)})
    assert status == 200


def test_a_router_that_lost_its_routes_is_observed_and_routed_again(applied: Path, mlflow_server: str) -> None:
    served = _served(applied)
    assert served.url is not None
    [server] = served.servers
    served.admin("/-/routes", {"backends": []})  # what a kill between its start and its first route leaves
    predict = f"{served.url}/v1/models/{MODEL}:predict"
    assert _post(predict, {"instances": _rows(mlflow_server)})[0] == 503
    assert main(["--repo", str(applied), "status"]) == 1  # the router is not healthy with nowhere to route
    assert main(["--repo", str(applied), "plan", "--target", "local", "--detailed-exitcode"]) == 2
    assert _apply(applied) == 0
    again = _served(applied).serving()
    assert again is not None
    assert again.process.pid == server.process.pid  # the running server routed again, not restarted
    assert _post(predict, {"instances": _rows(mlflow_server)})[0] == 200


def test_the_materialization_gate_refuses_bad_data(applied: Path) -> None:
    """Data that breaks after the plan is still stopped: the gate runs on all rows before writing."""
    from dataclasses import replace

    from shipyard.engine.planner import plan
    from shipyard.engine.targets import parse_target
    from shipyard.planes.features.checks_report import DataCheckFailed
    from shipyard.sdk import Action

    registry = discover()
    current = plan(registry, applied, parse_target("local"))
    [window] = [c for c in current.plan.changes if c.kind == "Materialization"]
    assert current.target is not None
    try:
        assert main(["--repo", str(applied), "seed", "--corrupt", "nulls"]) == 0
        with pytest.raises(DataCheckFailed) as failed:
            registry.plane("features").apply(
                replace(window, action=Action.UPDATE), current.contexts["features"], current.target
            )
    finally:
        assert main(["--repo", str(applied), "seed", "--force"]) == 0  # the good data back, for the other tests
    assert "fraud/user_stats was not materialized" in failed.value.message
    assert any("amount_mean_7d" in d.message for d in failed.value.diagnostics)


def test_the_training_gate_stops_the_pipeline_on_bad_data(tmp_path: Path) -> None:
    """The pipeline's own first step runs the same checks on all of the data before training."""
    import importlib.util

    from conftest import REPO_ROOT

    subprocess.run(
        [sys.executable, str(REPO_ROOT / "features/fraud/synthetic.py"), "--out", str(tmp_path), "--corrupt", "range"],
        check=True,
    )
    spec = importlib.util.spec_from_file_location("fraud_train", REPO_ROOT / "pipelines/fraud/train/pipeline.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    checks = [
        {
            "name": "fraud/transactions",
            "path": str(tmp_path / "transactions.parquet"),
            "expectations": [{"expect": "between", "column": "amount", "min": 0, "max": 100000}],
        }
    ]
    with pytest.raises(RuntimeError, match=r"expect_column_values_to_be_between on 'amount': 25 of \d+ rows"):
        module.check_data.python_func(data_checks=json.dumps(checks))


def test_status_lists_what_runs_and_down_stops_exactly_that(applied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = local_state_dir(applied)
    ours = processes.table(state)
    serving = _served(applied).serving()
    assert serving is not None
    assert sorted(p.name for p in ours) == [
        "mlflow",
        f"model server fraud/fraud-scorer v{serving.version}",
        "router fraud/fraud-scorer",
    ]
    capsys.readouterr()
    assert main(["--repo", str(applied), "status"]) == 0
    listed = capsys.readouterr().out
    assert "router fraud/fraud-scorer" in listed
    assert listed.count("healthy") == 3

    # A record whose PID now belongs to another process (its start time differs) is never signalled.
    stranger = subprocess.Popen(["sleep", "60"])
    record = state / processes.TABLE / f"{stranger.pid}.json"
    record.write_text(json.dumps(processes.Process(stranger.pid, 1.0, 1, "", str(record), "not ours").to_dict()))
    try:
        assert main(["--repo", str(applied), "down"]) == 0
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
    assert not any(processes.alive(p) for p in ours)
    assert processes.table(state) == []
    capsys.readouterr()
    assert main(["--repo", str(applied), "status"]) == 0
    assert "Nothing runs locally" in capsys.readouterr().out


# -- drift: told apart from what is not applied yet ------------------------------------------------


def _drift(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["--repo", str(root), "drift", "--target", "local", "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_drift_names_a_moved_alias_a_stopped_server_and_an_unapplied_feature_view(
    applied: Path, mlflow_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    code, found = _drift(applied, capsys)
    assert (code, found["drift"], found["outside"], found["pending"]) == (0, False, [], [])

    moved = _register_like_the_champion(mlflow_server)
    _reject(mlflow_server, moved)  # never promoted by Shipyard: only the hand below moves the alias
    MlflowClient(mlflow_server, mlflow_server).set_registered_model_alias(MODEL, "champion", str(moved))
    running = _served(applied).serving()
    assert running is not None
    os.kill(running.process.pid, signal.SIGKILL)
    edit(applied, "features/fraud/features.py", "ttl=timedelta(days=2)", "ttl=timedelta(days=3)")
    try:
        code, found = _drift(applied, capsys)
        assert code == 2
        outside = {entry["key"]: entry for entry in found["outside"]}
        pending = {entry["key"]: entry for entry in found["pending"]}
        assert set(outside) == {"models/fraud/ModelAlias/fraud-scorer", "models/fraud/InferenceService/fraud-scorer"}
        assert outside["models/fraud/InferenceService/fraud-scorer"]["what"].startswith("gone from the target")
        [alias] = outside["models/fraud/ModelAlias/fraud-scorer"]["fields"]
        assert (alias["field"], alias["live"]) == ("version", moved)
        # the view, and what materializing it writes (its ttl bounds what the online store keeps)
        assert set(pending) == {"features/fraud/FeatureView/user_stats", "features/fraud/Materialization/user_stats"}
        assert [f["field"] for f in pending["features/fraud/FeatureView/user_stats"]["fields"]] == ["ttl"]

        assert main(["--repo", str(applied), "up"]) == 0
        code, found = _drift(applied, capsys)
        assert (code, found["outside"], found["pending"]) == (0, [], [])
        assert _champion(mlflow_server) != moved
    finally:
        commit(applied, "a longer ttl")  # the module's repo stays consistent with what is applied
