"""`shipyard up` end to end, as a user runs it (fresh CLI processes): the MLflow server, training, then (as
stage 2) promotion and serving come up and answer a smoke request with features from the online store; a
second `up` changes nothing; `plan` and `apply` find the same services `up` started, so a spec edit applied
with `apply` is the only change; `down` leaves no process behind. And each way it can fail: a port taken,
bad data, a team's pipeline that raises, a missing library, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from conftest import began, commit, edit, example_repo, write
from shipyard.sdk import processes
from shipyard.sdk.planes import local_state_dir

SHIPYARD = str(Path(sys.executable).parent / "shipyard")
PREDICT = "/v1/models/fraud-scorer:predict"

pytestmark = pytest.mark.e2e


def _env(**extra: str) -> dict[str, str]:
    # A tracking URI in the caller's environment changes nothing: the local services come from the process table.
    return dict(os.environ) | {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"} | extra


def _run(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [SHIPYARD, "--repo", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, env=_env(**env), timeout=600)


def _running(root: Path) -> dict[str, dict]:
    listed = json.loads(_run(root, "status", "--format", "json").stdout)["processes"]
    return {p["name"].split(" v")[0]: p for p in listed}


def _predict(url: str) -> float:
    """The fraud probability the served model gives one ordinary transaction (and a risky one scores higher)."""
    row = {"amount": 18.5, "is_foreign": 0, "hour": 14, "txn_count_7d": 3}
    row |= {"amount_mean_7d": 42.0, "amount_max_7d": 90.0, "foreign_ratio_7d": 0.0}
    risky = row | {"amount": 900.0, "is_foreign": 1, "hour": 2}
    request = urllib.request.Request(
        url + PREDICT, json.dumps({"instances": [row, risky]}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        ordinary, suspicious = json.load(answer)["predictions"]
    # A probability, not a 0/1 class: strictly between, and ranked.
    assert 0.0 < ordinary < suspicious < 1.0, (ordinary, suspicious)
    return float(ordinary)


def test_up_serves_everything_again_changes_nothing_edits_apply_alone_and_down_cleans_up(tmp_path: Path) -> None:
    root = example_repo(tmp_path)
    try:
        first = _run(root, "up")
        assert first.returncode == 0, first.stderr[-3000:]
        assert "mlflow: started at http://127.0.0.1:" in first.stdout
        assert "Downloading artifacts" not in first.stdout + first.stderr  # no library's progress bars
        # The smoke request: user 1000's features from the online store, then a prediction.
        smoke = re.search(r"fraud/fraud-scorer\s+v1 @champion\s+(\S+ \S+) UTC \(\d+ h ago\)\s+([0-9.]+)", first.stdout)
        assert smoke, first.stdout
        v2 = re.search(r"V2 POST (http://127\.0\.0\.1:\d+/v2/models/fraud-scorer/infer)", first.stdout)
        assert v2, first.stdout
        assert re.search(r"steps: validate [0-9.]+ s · services [0-9.]+ s · prepare .* apply .* smoke", first.stdout)
        # Training registered version 1 in stage 1; stage 2 planned the models plane again and promoted it.
        stage = first.stdout.split("stage 2: models planned again", 1)
        assert len(stage) == 2, first.stdout
        assert "~ update  models/fraud/ModelAlias/fraud-scorer  version: null -> 1" in stage[1]
        assert "+ create  models/fraud/InferenceService/fraud-scorer" in stage[1]
        running = _running(root)
        assert set(running) == {"mlflow", "model server fraud/fraud-scorer", "router fraud/fraud-scorer"}
        assert all(p["healthy"] for p in running.values())
        mlflow = running["mlflow"]["url"]
        with urllib.request.urlopen(
            f"{mlflow}/api/2.0/mlflow/registered-models/alias?name=fraud-scorer&alias=champion"
        ) as r:
            assert json.load(r)["model_version"]["version"] == "1"  # trained, registered and promoted through it
        router = running["router fraud/fraud-scorer"]["url"]
        assert _predict(router) < 0.5
        assert v2.group(1).startswith(router)

        again = _run(root, "up")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "mlflow: running at" in again.stdout
        assert "Applied 0 changes to local" in again.stdout
        assert {n: p["pid"] for n, p in _running(root).items()} == {n: p["pid"] for n, p in running.items()}

        assert _run(root, "plan", "--detailed-exitcode").returncode == 0  # plan finds what up started
        edit(root, "models/fraud/fraud-scorer.yaml", "    max: 4", "    max: 6")
        edited = _run(root, "apply")  # apply alone serves from the MLflow server up started
        assert edited.returncode == 0, edited.stderr[-3000:]
        assert "~ update  models/fraud/InferenceService/fraud-scorer" in edited.stdout
        assert "Applied 1 changes to local" in edited.stdout
        after = _running(root)
        assert after["model server fraud/fraud-scorer"]["pid"] != running["model server fraud/fraud-scorer"]["pid"]
        assert after["router fraud/fraud-scorer"]["url"] == router  # replaced behind the same URL
        assert _predict(router) < 0.5
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


def _stopped_everything(root: Path) -> None:
    started = processes.table(local_state_dir(root))
    down = _run(root, "down")
    assert down.returncode == 0, down.stderr
    assert not any(processes.alive(p) for p in started)


FAILING_PIPELINE = {
    "pipelines/recsys/train/pipeline.yaml": """apiVersion: shipyard.dev/v1alpha1
kind: Pipeline
metadata: {name: train, team: recsys}
spec:
  source: pipeline.py
  owner: "@recsys-leads"
  experiment: recsys
""",
    "pipelines/recsys/train/pipeline.py": """from kfp import dsl


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def build_matrix(rows: int) -> int:
    raise MemoryError(f"the item matrix ({rows} rows) does not fit")


@dsl.pipeline(name="recsys-train")
def recsys_train(rows: int = 10):
    build_matrix(rows=rows)
""",
}


def test_a_team_whose_pipeline_raises_does_not_stop_the_others(tmp_path: Path) -> None:
    root = example_repo(tmp_path)
    write(root, FAILING_PIPELINE)
    commit(root, "a recsys pipeline that raises")
    try:
        result = _run(root, "up")
        assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]  # a failed apply
        failed = result.stdout.split("Failed", 1)[1]
        assert "✗ pipelines/recsys/Pipeline/train:" in failed
        assert "the item matrix (10 rows) does not fit" in failed
        assert "fraud" not in failed
        # The fraud team came up all the same: trained, promoted, served, smoke-tested.
        assert re.search(r"fraud/fraud-scorer\s+v1 @champion", result.stdout)
        assert _predict(_running(root)["router fraud/fraud-scorer"]["url"]) < 0.5
    finally:
        _stopped_everything(root)


def test_up_stops_before_training_on_a_failing_data_check(tmp_path: Path) -> None:
    root = example_repo(tmp_path)
    assert _run(root, "seed", "--corrupt", "nulls").returncode == 0
    try:
        result = _run(root, "up")
        assert result.returncode == 1
        assert "amount_mean_7d" in result.stderr  # the data check's report, at the check's line
        assert "features/fraud/checks/user-stats.yaml:" in result.stderr
        assert "Traceback" not in result.stderr
        assert "Applied" not in result.stdout  # stopped at the plan: nothing trained, nothing served
        assert set(_running(root)) == {"mlflow"}
        mlflow = _running(root)["mlflow"]["url"]
        with urllib.request.urlopen(f"{mlflow}/api/2.0/mlflow/registered-models/search") as answer:
            assert json.load(answer).get("registered_models", []) == []
        assert not (local_state_dir(root) / "pipelines" / "runs").exists()
    finally:
        _stopped_everything(root)


def test_a_missing_plane_library_names_the_install_command(tmp_path: Path) -> None:
    root = example_repo(tmp_path)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "feast.py").write_text('raise ModuleNotFoundError("No module named \'feast\'", name="feast")\n')

    result = _run(root, "plan", PYTHONPATH=str(blocked))

    assert result.returncode == 1, result.stderr
    assert "'feast' is not installed; it comes with shipyard's features extra" in result.stderr
    assert "uv sync --extra features" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_during_up_leaves_no_orphan_process(tmp_path: Path) -> None:
    """Every process `up` started is either gone after Ctrl-C or in the process table, where `down` stops it."""
    root = example_repo(tmp_path)
    up = subprocess.Popen(
        [SHIPYARD, "--repo", str(root), "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    seen: dict[int, psutil.Process] = {}
    interrupted_at = None
    deadline = time.monotonic() + 300
    while up.poll() is None and time.monotonic() < deadline:
        try:
            for child in psutil.Process(up.pid).children(recursive=True):
                seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            break
        training = began(root, "pipelines/fraud/Pipeline/train")
        if interrupted_at is None and training:
            time.sleep(3)  # well into the pipeline: its worker and KFP's component processes run
            os.killpg(up.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to the foreground group
            interrupted_at = time.monotonic()
        time.sleep(0.1)
    output = up.communicate(timeout=60)[0]
    assert interrupted_at is not None, output[-3000:]
    assert up.returncode == 1, output[-3000:]
    assert "aborted" in output
    try:
        managed = {p.pid for p in processes.table(local_state_dir(root))}
        assert len(seen) > 2  # the MLflow server, the planes' workers, the pipeline's processes

        def under_a_managed_one(process: psutil.Process) -> bool:  # the MLflow server's own helpers count as it
            return any(p.pid in managed for p in [process, *process.parents()])

        orphans = [p for p in seen.values() if _runs(p) and not under_a_managed_one(p)]
        assert orphans == [], [" ".join(p.cmdline()[:4]) for p in orphans]
    finally:
        _stopped_everything(root)
    assert not any(_runs(p) for p in seen.values())


def _runs(process: psutil.Process) -> bool:
    """Alive and not a zombie (one that exited and waits for its parent to collect it)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
