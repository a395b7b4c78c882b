"""`shipyard up` end to end, as a user runs it (fresh CLI processes): the MLflow server, training, promotion
and serving come up; a second `up` changes nothing; a spec edit is the only change applied; `down` leaves no
process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import edit, example_repo
from shipyard.sdk import processes
from shipyard.sdk.planes import local_state_dir

SHIPYARD = str(Path(sys.executable).parent / "shipyard")
PREDICT = "/v1/models/fraud-scorer:predict"


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # up provides it
    return subprocess.run([SHIPYARD, "--repo", str(root), *args], capture_output=True, text=True, env=env, timeout=600)


def _running(root: Path) -> dict[str, dict]:
    listed = json.loads(_run(root, "status", "--format", "json").stdout)["processes"]
    return {p["name"].split(" v")[0]: p for p in listed}


def _predict(url: str) -> list[float]:
    row = {"amount": 18.5, "is_foreign": 0, "hour": 14, "txn_count_7d": 3}
    row |= {"amount_mean_7d": 42.0, "amount_max_7d": 90.0, "foreign_ratio_7d": 0.0}
    request = urllib.request.Request(
        url + PREDICT, json.dumps({"instances": [row]}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return list(json.load(answer)["predictions"])


def test_up_serves_everything_again_changes_nothing_edits_apply_alone_and_down_cleans_up(tmp_path: Path) -> None:
    root = example_repo(tmp_path)
    try:
        first = _run(root, "up")
        assert first.returncode == 0, first.stderr[-3000:]
        assert "mlflow: started at http://127.0.0.1:" in first.stdout
        running = _running(root)
        assert set(running) == {"mlflow", "model server fraud/fraud-scorer", "router fraud/fraud-scorer"}
        assert all(p["healthy"] for p in running.values())
        mlflow = running["mlflow"]["url"]
        with urllib.request.urlopen(
            f"{mlflow}/api/2.0/mlflow/registered-models/alias?name=fraud-scorer&alias=champion"
        ) as r:
            assert json.load(r)["model_version"]["version"] == "1"  # trained, registered and promoted through it
        router = running["router fraud/fraud-scorer"]["url"]
        assert _predict(router) in ([0.0], [1.0])

        again = _run(root, "up")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "mlflow: running at" in again.stdout
        assert "Applied 0 changes to local" in again.stdout
        assert {n: p["pid"] for n, p in _running(root).items()} == {n: p["pid"] for n, p in running.items()}

        edit(root, "models/fraud/fraud-scorer.yaml", "    max: 4", "    max: 6")
        edited = _run(root, "up")
        assert edited.returncode == 0, edited.stderr[-3000:]
        assert "~ update  models/fraud/fraud-scorer/InferenceService" in edited.stdout
        assert "Applied 1 changes to local" in edited.stdout
        after = _running(root)
        assert after["model server fraud/fraud-scorer"]["pid"] != running["model server fraud/fraud-scorer"]["pid"]
        assert after["router fraud/fraud-scorer"]["url"] == router  # replaced behind the same URL
        assert _predict(router) in ([0.0], [1.0])
    finally:
        started = processes.table(local_state_dir(root))
        down = _run(root, "down")
    assert down.returncode == 0, down.stderr
    assert started
    assert not any(processes.alive(p) for p in started)
    assert processes.table(local_state_dir(root)) == []


def test_up_refuses_a_remembered_port_someone_else_took(tmp_path: Path) -> None:
    root = example_repo(tmp_path)
    with processes.listen() as taken:
        port = taken.getsockname()[1]
        state = local_state_dir(root)
        state.mkdir(parents=True)
        (state / "ports.json").write_text(json.dumps({"mlflow": port}))

        result = _run(root, "up")

    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr
    assert "Traceback" not in result.stderr
    assert processes.table(state) == []  # nothing was started
