"""An apply killed while it trains: nothing it started goes on, and the next apply registers no second version.

End to end (e2e): the kill point is held open in the training pipeline's own register step (a marker file the
step waits on, added to the test's copy of the template), right after the model version is registered and before
the MLflow run ends. The apply is SIGKILLed there, the engine process alone: its plane workers and the KFP task
processes must die with it rather than finish the training as orphans. The next apply finds the version, tagged
with the change it was trained for, and adopts it: one version, and the aliases an uninterrupted apply leaves.

Fast: a worker's whole tree dies with the engine (killed alone or with its process group), and the pipelines
worker's decision (adopt, wait, run again) on the MLflow runs a change already made.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import began, commit, edit, example_repo
from shipyard.cli import main
from shipyard.engine.local import endpoints, start_services
from shipyard.engine.registry import discover
from shipyard.sdk import Action, Change, Resource, processes
from shipyard.sdk.planes import Target, local_state_dir

MODEL = "fraud-scorer"
TRAINING = "pipelines/fraud/Pipeline/train"
PYTHON = [sys.executable, "-c"]
APPLY = [*PYTHON, "import sys; from shipyard.cli import main; sys.exit(main())"]
HOLD_DEADLINE_S = 300.0  # a busy 2-core host: features applied, then four pipeline steps
GONE_WITHIN_S = 10.0

#: A kill point in the register step: while ``<holds>/<point>`` exists, the step waits there.
HOLD = """
    def _hold(point):  # a kill point for tests/test_training_crash.py
        import os
        import pathlib
        import time

        marker = pathlib.Path({holds!r}) / point
        if marker.exists():
            (marker.parent / (point + ".reached")).write_text(str(os.getpid()))
            while marker.exists():
                time.sleep(0.1)

"""


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The example repo with kill points in its training, the local services up and data seeded; the holds folder."""
    root = example_repo(tmp_path)
    holds = tmp_path / "holds"
    holds.mkdir()
    pipeline = "pipelines/fraud/train/pipeline.py"
    docstring = '    almost nothing at a 5 % base rate.\n    """\n'  # the end of the register step's docstring
    edit(root, pipeline, docstring, docstring + HOLD.format(holds=str(holds)))
    registered = '        )\n    return f"{registered_model} version'
    edit(root, pipeline, registered, '        )\n        _hold("registered")\n    return f"{registered_model} version')
    commit(root, "a kill point in the register step")
    try:
        start_services(discover(), root)  # the MLflow server: the test's, not a descendant of any apply
        assert main(["--repo", str(root), "seed"]) == 0
        yield root, holds
    finally:
        main(["--repo", str(root), "down"])  # no server outlives the test, even after a failure
        for left in processes.table(local_state_dir(root)):
            processes.stop(left)


@pytest.fixture
def applies() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The applies a test starts; any still running at its end is killed with its process group."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def _apply(root: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [*APPLY, "--repo", str(root), "apply", "--target", "local"],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, apart from pytest's
        )


def _held(child: subprocess.Popen[bytes], holds: Path, point: str, log: Path) -> int:
    """Wait until the training reached ``point`` and waits there; the PID of the task process holding it."""
    reached = holds / f"{point}.reached"
    deadline = time.monotonic() + HOLD_DEADLINE_S
    while not reached.exists():
        assert child.poll() is None, f"the apply ended (exit {child.returncode}) first:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the training did not reach '{point}' in time"
        time.sleep(0.1)
    return int(reached.read_text())


def _lives(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill(child: subprocess.Popen[Any], descendants: list[psutil.Process], *, group: bool) -> list[str]:
    """SIGKILL the engine (alone, or its process group); those of its ``descendants`` still running a while later."""
    if group:
        os.killpg(child.pid, signal.SIGKILL)
    else:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + GONE_WITHIN_S
    while any(_lives(p) for p in descendants) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [p for p in descendants if _lives(p)]
    found = []
    for process in survivors:  # an orphan would go on training and registering: report it, and stop it
        try:
            found.append(f"{process.pid}: {' '.join(process.cmdline())[:160]}")
            process.kill()
        except psutil.Error:
            continue
    return found


@pytest.mark.e2e
def test_an_apply_killed_after_its_training_registered_leaves_no_orphans_and_one_version(
    platform: tuple[Path, Path], applies: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    root, holds = platform
    mlflow_server = endpoints(discover(), local_state_dir(root))["mlflow"]
    client = MlflowClient(mlflow_server, mlflow_server)

    (holds / "registered").touch()
    log = tmp_path / "apply.log"
    child = _apply(root, log)
    applies.append(child)
    task = _held(child, holds, "registered", log)
    assert began(root, TRAINING)
    assert [v.version for v in client.search_model_versions(f"name = '{MODEL}'")] == ["1"]
    descendants = psutil.Process(child.pid).children(recursive=True)
    assert task in [p.pid for p in descendants]  # the register step is the engine's, through its worker
    assert _kill(child, descendants, group=False) == []  # its workers and the KFP task processes died with it
    (holds / "registered").unlink()  # an orphan, had one survived, would go on from here

    done = subprocess.run(
        [*APPLY, "--repo", str(root), "apply", "--target", "local"],
        capture_output=True,
        text=True,
        timeout=HOLD_DEADLINE_S,
    )
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert [v.version for v in versions] == ["1"], done.stdout + done.stderr  # one version for one training
    assert done.returncode == 0, done.stdout + done.stderr
    [version] = versions
    assert client.get_registered_model(MODEL).aliases == {"champion": "1"}  # as an uninterrupted apply leaves it
    experiments = [e.experiment_id for e in client.search_experiments()]
    [run] = client.search_runs(experiments, f"tags.`shipyard.change` = '{TRAINING}'")  # nothing trained again
    assert run.info.run_id == version.run_id
    assert run.info.status == "KILLED"  # its worker is gone: the run is not left RUNNING


# -- fast: the worker's tree ---------------------------------------------------------------------------------

SPAWNING_TASKS = """
import subprocess


def task_spawn(pids):
    # A child and a grandchild, as the KFP local runner's `sh -ec ... python -m kfp.dsl.executor_main`.
    subprocess.run(["sh", "-c", "sleep 300 & echo $! > " + pids + "; wait"])
    return "finished"
"""


@pytest.mark.parametrize("group", [False, True], ids=["engine-alone", "engine-group"])
def test_a_worker_and_what_it_started_die_with_the_engine(tmp_path: Path, group: bool) -> None:
    (tmp_path / "spawning_tasks.py").write_text(SPAWNING_TASKS)
    pids = tmp_path / "pids"
    engine = subprocess.Popen(
        [
            *PYTHON,
            "import sys; from shipyard.sdk.worker import Worker; "
            "Worker('spawning_tasks', env={'PYTHONPATH': sys.argv[1]}).call('spawn', pids=sys.argv[2])",
            str(tmp_path),
            str(pids),
        ],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (pids.exists() and pids.read_text().strip()):
            assert engine.poll() is None, f"the engine ended (exit {engine.returncode})"
            assert time.monotonic() < deadline, "the task did not start in time"
            time.sleep(0.05)
        descendants = psutil.Process(engine.pid).children(recursive=True)
        assert int(pids.read_text()) in [p.pid for p in descendants]  # worker, sh, and sleep
        assert _kill(engine, descendants, group=group) == []
    finally:
        if engine.poll() is None:
            os.killpg(engine.pid, signal.SIGKILL)
            engine.wait()


# -- fast: a change's earlier runs ---------------------------------------------------------------------------


@dataclass
class _Experiment:
    experiment_id: str


@dataclass
class _Info:
    run_id: str
    status: str


@dataclass
class _Data:
    tags: dict[str, str]


@dataclass
class _Run:
    info: _Info
    data: _Data


@dataclass
class _Version:
    name: str
    version: str
    run_id: str
    status: str = "READY"


@dataclass
class _Registry:
    """What the worker asks MLflow, answered from lists: every run found carries the identity asked for."""

    runs: list[_Run]
    versions: list[_Version] = field(default_factory=list)
    terminated: dict[str, str] = field(default_factory=dict)

    def search_experiments(self, max_results: int) -> list[Any]:
        return [_Experiment("1")]

    def search_runs(self, experiments: list[str], query: str, max_results: int) -> list[_Run]:
        assert "tags.`shipyard.change` = 'pipelines/fraud/Pipeline/train'" in query
        return self.runs

    def search_model_versions(self, query: str) -> list[_Version]:
        return [v for v in self.versions if query == f"run_id = '{v.run_id}'"]

    def set_terminated(self, run_id: str, status: str) -> None:
        self.terminated[run_id] = status
        next(r for r in self.runs if r.info.run_id == run_id).info.status = status


IDENTITY = {"shipyard.change": TRAINING, "shipyard.change.digest": "0123456789abcdef"}


def _tagged(run_id: str, status: str, runner: str, **more: str) -> _Run:
    return _Run(_Info(run_id, status), _Data(IDENTITY | {"shipyard.runner": runner} | more))


def _runner(pid: int) -> str:
    return f"{socket.gethostname()} {pid} {psutil.Process(pid).create_time()!r}"


GONE = f"{socket.gethostname()} 999999999 1.0"  # a worker that no longer runs


def _earlier(registry: _Registry, monkeypatch: pytest.MonkeyPatch) -> Any:
    from shipyard.planes.pipelines import tasks

    monkeypatch.setattr(tasks, "_client", lambda uri: registry)
    return tasks._earlier_run(IDENTITY, "http://127.0.0.1:1")


def test_a_version_a_killed_run_registered_is_adopted(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _Registry([_tagged("a", "RUNNING", GONE)], [_Version(MODEL, "1", "a")])
    assert _earlier(registry, monkeypatch) == {"versions": [{"name": MODEL, "version": 1, "run_id": "a"}]}
    assert registry.terminated == {"a": "KILLED"}


def test_a_killed_run_that_registered_nothing_is_run_again(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _Registry([_tagged("a", "RUNNING", GONE), _tagged("b", "FAILED", GONE)], [_Version(MODEL, "1", "b")])
    assert _earlier(registry, monkeypatch) is None  # and a failed run's version is not adopted
    assert registry.terminated == {"a": "KILLED"}


def test_what_a_failed_pipeline_registered_is_not_adopted(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = _tagged("a", "FINISHED", GONE, **{"shipyard.pipeline.failed": "true"})
    assert _earlier(_Registry([failed], [_Version(MODEL, "1", "a")]), monkeypatch) is None


def test_a_run_still_going_is_waited_for_never_run_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.planes.pipelines import tasks

    going = _tagged("a", "RUNNING", _runner(os.getpid()))  # a live worker: this process
    registry = _Registry([going], [_Version(MODEL, "1", "a")])
    waits = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        going.info.status = "FINISHED"

    monkeypatch.setattr(tasks.time, "sleep", wait)
    assert _earlier(registry, monkeypatch) == {"versions": [{"name": MODEL, "version": 1, "run_id": "a"}]}
    assert len(waits) == 1
    assert registry.terminated == {}


def test_a_change_is_named_by_its_content_and_the_runs_before_it(tmp_path: Path) -> None:
    from shipyard.planes.pipelines import _identity, _record_run

    target = Target("local", "local", tmp_path, tmp_path / "state")
    desired = Resource("pipelines", "Pipeline", "fraud", "train", {"ir": "abc"}, payload={"compiled": "ir: abc"})
    change = Change("pipelines", "Pipeline", "fraud", "train", Action.CREATE, desired=desired)
    first = _identity(change, target)
    assert first["shipyard.change"] == TRAINING
    assert _identity(change, target) == first  # the same change, planned again after a crash
    other = Resource("pipelines", "Pipeline", "fraud", "train", {"ir": "abd"}, payload={"compiled": "ir: abd"})
    assert _identity(Change("pipelines", "Pipeline", "fraud", "train", Action.CREATE, desired=other), target) != first
    (target.state_dir / "pipelines").mkdir(parents=True)
    _record_run(target, TRAINING, "v", {"outputs": {}})
    assert _identity(change, target) != first  # the same content later (a revert) trains again
