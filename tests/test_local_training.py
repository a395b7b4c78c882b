"""End to end on the local target: features applied and materialized, the training pipeline run with the
KFP local runner, and the model version found in a real MLflow tracking server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import example_repo
from shipyard.cli import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    server = subprocess.Popen(
        [
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
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the MLflow server did not start") from None
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Iterator[Path]:
    root = example_repo(tmp_path_factory.mktemp("local"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        assert main(["--repo", str(root), "seed"]) == 0
        assert main(["--repo", str(root), "apply", "--target", "local"]) == 0
        yield root


def _versions(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/model-versions/search?filter=name%3D%27fraud-scorer%27") as r:
        return json.load(r).get("model_versions", [])


def test_training_registers_a_model_version_with_its_metrics(applied: Path, mlflow_server: str) -> None:
    [version] = _versions(mlflow_server)
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
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        assert main(["--repo", str(applied), "plan", "--target", "local", "--detailed-exitcode"]) == 0
        assert main(["--repo", str(applied), "apply", "--target", "local"]) == 0
    assert len(_versions(mlflow_server)) == 1


def test_the_materialization_gate_refuses_bad_data(applied: Path) -> None:
    """Data that breaks after the plan is still stopped: the gate runs on all rows before writing."""
    from shipyard.engine.planner import plan
    from shipyard.engine.registry import discover
    from shipyard.engine.targets import parse_target
    from shipyard.planes.features.checks_report import DataCheckFailed
    from shipyard.sdk import Action, Change

    registry = discover()
    ref = parse_target("local")
    current = plan(registry, applied, ref)
    [window] = [c for c in current.plan.changes if c.kind == "Materialization"]
    assert main(["--repo", str(applied), "seed", "--corrupt", "nulls"]) == 0
    change = Change(window.key, window.plane, window.kind, Action.UPDATE, (), window.desired, window.observed)
    with pytest.raises(DataCheckFailed) as failed:
        registry.plane("features").apply(change, ref.resolve(applied))
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
