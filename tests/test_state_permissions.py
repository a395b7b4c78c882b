"""`.shipyard/` is the owner's alone: created 0700, its files 0600, whatever the umask."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Result
from shipyard.engine.state.store import FileStore
from shipyard.sdk import processes
from shipyard.sdk.model import Resource
from shipyard.sdk.planes import STATE_DIR, ensure_state_root, local_state_dir
from shipyard.sdk.store import ResourceStore

Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The usual umask, under which a plain mkdir is 0755 and a plain file 0644."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _loose(state: Path) -> list[str]:
    """What under ``state`` (itself included) is not the owner's alone: a folder not 0700, a file not 0600."""
    found = []
    for path in [state, *sorted(state.rglob("*"))]:
        want = 0o700 if path.is_dir() else 0o600
        if _mode(path) != want:
            found.append(f"{path.relative_to(state.parent)}: {oct(_mode(path))}")
    return found


def test_apply_writes_its_state_for_the_owner_alone(shipyard: Run, repo: Path) -> None:
    applied = shipyard("apply", repo=repo)
    assert applied.code == 0, applied.err
    state = repo / STATE_DIR
    assert _mode(state) == 0o700
    written = {p.relative_to(state).as_posix() for p in state.rglob("*") if p.is_file()}
    assert "local/applied.json" in written
    assert any(name.startswith("local/journal/") for name in written)
    assert any(name.startswith("local/tenancy/") for name in written)
    assert not (state / "local" / "lock.json").exists()  # released
    assert _loose(state) == []


def test_a_state_folder_left_open_is_closed(shipyard: Run, repo: Path) -> None:
    state = repo / STATE_DIR
    (state / "local").mkdir(parents=True)
    state.chmod(0o755)
    assert shipyard("plan", repo=repo).code == 0
    assert _mode(state) == 0o700
    state.chmod(0o775)
    assert shipyard("apply", repo=repo).code == 0
    assert _mode(state) == 0o700


def test_the_state_root_is_private_whoever_creates_it_first(tmp_path: Path) -> None:
    assert ensure_state_root(tmp_path) == tmp_path / STATE_DIR
    assert _mode(tmp_path / STATE_DIR) == 0o700
    # The stores create what they write to, folders and all, for the owner alone.
    other = tmp_path / "other"
    other.mkdir()
    store = FileStore(other / STATE_DIR / "targets" / "dev")
    assert store.create("journal/x/1.json", b"{}") is not None
    tag = store.create("lock.json", b"{}")
    assert tag is not None
    assert store.replace("lock.json", b"[]", tag) is not None
    store.put("applied.json", b"{}")
    resources = ResourceStore(tmp_path / "third" / STATE_DIR / "local" / "tenancy")
    resources.put(Resource("tenancy", "Namespace", "fraud", "fraud", {"a": 1}))
    assert _loose(other / STATE_DIR) == []
    assert _loose(tmp_path / "third" / STATE_DIR) == []


def test_the_process_table_ports_locks_and_logs_are_private(tmp_path: Path) -> None:
    state = local_state_dir(tmp_path)
    port = processes.port_for(state, "sleeper")
    started = processes.start(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        port,
        state_dir=state,
        name="sleeper",
        health="/",
        lock=processes.lock_file(state, "sleeper"),
    )
    try:
        written = {p.relative_to(state).as_posix() for p in state.rglob("*") if p.is_file()}
        assert written == {
            "ports.json",
            f"logs/sleeper.{port}.log",
            f"processes/{started.pid}.json",
            "locks/sleeper.lock",
        }
        assert _loose(tmp_path / STATE_DIR) == []
    finally:
        processes.stop(started)
