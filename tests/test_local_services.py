"""The local platform's services (the MLflow server) across interruptions: a re-run waits for a server that is
still starting instead of replacing it, never starts a second server on the same store, and a store that is
damaged all the same is named, with the fix, instead of an SQL traceback."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from conftest import Result, example_repo
from shipyard.cli import main
from shipyard.engine.local import start_services
from shipyard.engine.registry import Registry, discover
from shipyard.planes.models import mlflow_store_damaged
from shipyard.sdk import processes
from shipyard.sdk.errors import UserError
from shipyard.sdk.planes import LocalService, local_state_dir

SHIPYARD = str(Path(sys.executable).parent / "shipyard")
T = TypeVar("T")


def _poll(what: Callable[[], T | None], timeout_s: float, every_s: float = 0.01) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"not seen within {timeout_s:.0f} s")


def _tables(db: Path) -> set[str]:
    """The tables the SQLite file holds now (none while it is missing, or locked by its writer)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.01)) as connection:
            return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return set()


def _servers_of(db: Path) -> list[psutil.Process]:
    """Every MLflow server process whose backend store is ``db`` (its helpers are not given the URI)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or ())
        if "mlflow" in command and f"sqlite:///{db}" in command:
            found.append(process)
    return found


@pytest.fixture
def health_checks(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[int]:
    """How often each PID's health was checked: a caller that checks twice is waiting for it to start."""
    checks = collections.Counter[int]()
    checked = processes.healthy

    def counted(process: processes.Process) -> bool:
        checks[process.pid] += 1
        return checked(process)

    monkeypatch.setattr(processes, "healthy", counted)
    return checks


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.load(answer))


@pytest.mark.e2e
def test_a_rerun_after_ctrl_c_waits_for_the_mlflow_server_still_migrating(
    tmp_path: Path, registry: Registry, health_checks: collections.Counter[int]
) -> None:
    root = example_repo(tmp_path)
    state = local_state_dir(root)
    db = state / "mlflow" / "mlflow.db"
    up = subprocess.Popen(
        [SHIPYARD, "--repo", str(root), "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    server = None
    try:
        server = _poll(lambda: next((p for p in processes.table(state) if p.name == "mlflow"), None), 120)
        # The first `up`'s server is migrating the new store: the `scorers` table is there, later migrations
        # are not (a server killed now can leave a migration halfway: `table scorers already exists` ever
        # after). It is frozen right there, so that the re-run finds it mid-migration however fast this machine is.
        _poll(lambda: "scorers" in _tables(db), 120, every_s=0.002)
        os.kill(server.pid, signal.SIGSTOP)
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C
        output = up.communicate(timeout=60)[0]
        assert up.returncode == 1, output[-3000:]
        assert processes.alive(server)
        assert not processes.healthy(server)  # alive, migrating, not answering yet

        # The re-run, at once. The server goes on migrating once the re-run has looked at it: whatever the
        # re-run sent it by then (a SIGTERM, to replace it) is what the server gets first.
        health_checks.clear()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            rerun = pool.submit(start_services, registry, root)
            _poll(lambda: rerun.done() or health_checks[server.pid] >= 2, 120)  # it decided: it waits (or not)
            if processes.alive(server):
                os.kill(server.pid, signal.SIGCONT)
            again = rerun.result()

        [mlflow] = [running for running in again if running.service.name == "mlflow"]
        assert mlflow.process.pid == server.pid  # waited for, not replaced
        assert processes.healthy(mlflow.process)
        created = _post(f"{mlflow.process.url}/api/2.0/mlflow/experiments/create", {"name": "after-ctrl-c"})
        assert created["experiment_id"]  # the store is whole: its schema migrated once, to the end
        assert [p.pid for p in _servers_of(db)] == [server.pid]

        # A server the process table lost is found by its store, and still no second one starts.
        Path(mlflow.process.record).unlink()
        third = start_services(registry, root)
        assert [r.process.pid for r in third if r.service.name == "mlflow"] == [server.pid]
        assert [p.pid for p in _servers_of(db)] == [server.pid]
        assert [p.pid for p in processes.table(state) if p.name == "mlflow"] == [server.pid]
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.communicate()
        if server is not None and processes.alive(server):
            os.kill(server.pid, signal.SIGCONT)  # a frozen server would not act on the SIGTERM that stops it
        for process in processes.table(state):
            processes.stop(process)
    assert _servers_of(db) == []


# A service that answers its health check only once the test opens its gate: a server still migrating.
GATED = """
import http.server, pathlib, sys, time
gate = pathlib.Path(sys.argv[2])
while gate.exists():
    time.sleep(0.01)
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health)
pathlib.Path(sys.argv[2] + ".served").touch()
server.serve_forever()
"""


@pytest.fixture
def gated(tmp_path: Path, registry: Registry) -> Iterator[tuple[Registry, Path, Path]]:
    """A registry whose one service waits at a gate (a file) before it answers; the repo root; the gate."""
    root = tmp_path / "repo"
    gate = tmp_path / "gate"
    gate.touch()
    service = LocalService(
        "gated", "answers once its gate opens", lambda port, state: [sys.executable, "-c", GATED, str(port), str(gate)]
    )
    yield dataclasses.replace(registry, services=(service,)), root, gate
    for process in processes.table(local_state_dir(root)):
        processes.stop(process)


def _started_by_an_interrupted_up(root: Path) -> processes.Process:
    """The gated service as a first `up` started it before Ctrl-C: in the process table, not answering yet."""
    state = local_state_dir(root)
    port = processes.port_for(state, "gated")
    argv = [sys.executable, "-c", GATED, str(port), str(root.parent / "gate")]
    return processes.start(
        argv, port, state_dir=state, name="gated", health="/", lock=processes.lock_file(state, "gated")
    )


def test_a_service_still_starting_is_waited_for_and_never_started_twice(
    gated: tuple[Registry, Path, Path], health_checks: collections.Counter[int]
) -> None:
    services, root, gate = gated
    first = _started_by_an_interrupted_up(root)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        rerun = pool.submit(start_services, services, root)
        _poll(lambda: rerun.done() or health_checks[first.pid] >= 2 or not processes.alive(first), 30)
        gate.unlink()
        [running] = rerun.result(timeout=60)
    assert running.process == first  # waited for, not replaced
    assert not running.started_now
    # Lost from the process table, it is found by its store's lock; a second one is refused.
    Path(first.record).unlink()
    [found] = start_services(services, root)
    assert found.process == first
    assert processes.table(local_state_dir(root)) == [first]
    state = local_state_dir(root)
    with pytest.raises(UserError, match="another process keeps its store"):
        processes.start(
            ["true"], 1, state_dir=state, name="gated", health="/", lock=processes.lock_file(state, "gated")
        )


def test_down_lets_a_service_finish_starting_before_it_stops_it(
    gated: tuple[Registry, Path, Path], health_checks: collections.Counter[int], capsys: pytest.CaptureFixture[str]
) -> None:
    _, root, gate = gated
    first = _started_by_an_interrupted_up(root)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        down = pool.submit(main, ["--repo", str(root), "down"])
        _poll(lambda: down.done() or health_checks[first.pid] >= 2, 30)
        gate.unlink()
        assert down.result(timeout=60) == 0
    assert Path(f"{gate}.served").exists()  # it finished starting before it was stopped
    assert not processes.alive(first)
    assert f"waiting for gated (pid {first.pid}) to finish starting" in capsys.readouterr().out


DAMAGED = {
    "not a database": lambda db: db.write_bytes(b"not a database, whatever its name says" * 100),
    "half-migrated": lambda db: (
        sqlite3.connect(db).execute("CREATE TABLE scorers (scorer_id VARCHAR(36))").connection.commit()
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_a_damaged_mlflow_store_is_named_with_its_fix(repo: Path, shipyard: Callable[..., Result], damage: str) -> None:
    db = local_state_dir(repo) / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True)
    DAMAGED[damage](db)

    result = shipyard("up", repo=repo)

    assert result.code == 1, result.out + result.err
    assert f"the MLflow server could not open its store {db}" in result.err
    assert "shipyard down --purge" in result.err
    assert "Traceback" not in result.err + result.out
    assert processes.table(local_state_dir(repo)) == []  # nothing left running, nor remembered


def test_the_mlflow_store_diagnosis_reads_the_servers_log(tmp_path: Path) -> None:
    logged = (
        "2026/12/01 21:39:11 ERROR mlflow.cli: Error initializing backend store\n"
        "2026/12/01 21:39:11 ERROR mlflow.cli: (sqlite3.OperationalError) table scorers already exists\n"
        "Traceback (most recent call last):\n"
        "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) table scorers already exists\n"
    )
    error = mlflow_store_damaged(tmp_path, logged)
    assert error is not None
    assert error.message == (
        f"the MLflow server could not open its store {tmp_path / 'mlflow' / 'mlflow.db'}: "
        "(sqlite3.OperationalError) table scorers already exists"
    )
    assert "`shipyard down --purge`" in error.hint
    assert str(tmp_path / "mlflow") in error.hint  # what to keep aside, for a copy
    bare = mlflow_store_damaged(
        tmp_path, "sqlalchemy.exc.DatabaseError: (sqlite3.DatabaseError) file is not a database"
    )
    assert bare is not None
    assert bare.message.endswith(": (sqlite3.DatabaseError) file is not a database")
    assert mlflow_store_damaged(tmp_path, "OSError: [Errno 98] Address already in use") is None  # not the store


def test_the_local_mlflow_server_runs_without_mlflow_3s_job_runner(tmp_path: Path) -> None:
    """Nothing here submits server-side jobs: the server runs without its huey consumers (2 processes, not 10)."""
    root = example_repo(tmp_path)
    registry = discover()
    try:
        [mlflow] = [r for r in start_services(registry, root) if r.service.name == "mlflow"]
        tree = [psutil.Process(mlflow.process.pid), *psutil.Process(mlflow.process.pid).children(recursive=True)]
        commands = [" ".join(p.cmdline()) for p in tree]
        assert not [c for c in commands if "huey" in c], commands
        assert len(tree) <= 3, commands  # the server and its one worker
    finally:
        for left in processes.table(local_state_dir(root)):
            processes.stop(left)
