"""Processes the local platform starts: bound to 127.0.0.1, remembered by PID, stopped only if ours.

A PID alone can be reused by the system after our process exits, so a started
process is remembered with its start time; ``alive`` and ``stop`` act only on the
process that has both. Our own servers get their listening socket from us (``spawn``):
the port is known before the child starts and no other process can take it between.
Others (the MLflow server) get a port checked free just before they start (``start``).

A process that keeps a store (the MLflow server's database) is started holding that
store's lock (``start(lock=...)``), for as long as it lives: a second one on the same store
cannot start, and the holder is found from the lock even when the table lost its record.
A process still within its start-up (``STARTUP_S``; the MLflow server migrates its store
then) is waited for, never replaced: killed halfway, a migration leaves the store broken.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from shipyard.sdk.errors import UserError
from shipyard.sdk.store import open_private, private_dir, write_private

LOOPBACK = "127.0.0.1"
#: How long a process may take to start (the MLflow server migrating its store included) before it counts as hung.
STARTUP_S = 120.0
#: Every process Shipyard starts (servers, plane workers) runs with the libraries' telemetry off.
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "FEAST_USAGE": "False",
    "GX_ANALYTICS_ENABLED": "False",
    # and the libraries' own progress bars, which would interleave with Shipyard's output
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


@dataclass(frozen=True)
class Process:
    """A process we started: its PID, when it started (the PID's owner check), its port and log.

    ``record`` is its entry in the process table (``TABLE``) of the state folder it belongs
    to: ``shipyard status`` and ``shipyard down`` read that table.
    """

    pid: int
    started: float
    port: int
    log: str
    record: str = ""
    name: str = ""
    health: str = "/"
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)  # what the starter needs back
    log_from: int = 0  # where its own output starts in ``log``, which every start on that port appends to

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Process:
        return cls(**data)


TABLE = "processes"  # <state folder>/processes/<pid>.json: every process started for that target
PORTS = "ports.json"  # <state folder>/ports.json: ports kept for names, across restarts and `down`
LOCKS = "locks"  # <state folder>/locks/<name>.lock: held by the process that keeps <name>'s store


def table(state_dir: Path) -> list[Process]:
    """The processes started for a target's state folder, oldest first."""
    folder = state_dir / TABLE
    found = [Process.from_dict(json.loads(p.read_text(encoding="utf-8"))) for p in folder.glob("*.json")]
    return sorted(found, key=lambda p: p.started)


def listen(port: int = 0) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 (``port`` 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
    except OSError as error:
        sock.close()
        raise UserError(
            f"port {port} on {LOOPBACK} is taken: {error.strerror}",
            hint="stop what listens there, or let Shipyard choose a free port",
        ) from error
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def spawn(
    module: str,
    args: Sequence[str],
    sock: socket.socket,
    *,
    state_dir: Path,
    name: str,
    health: str,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Process:
    """Start ``python -m module args --fd N`` serving on ``sock``, which it inherits; see ``start``."""
    argv = [sys.executable, "-m", module, *args, "--fd", str(sock.fileno())]
    port = sock.getsockname()[1]
    try:
        return start(
            argv, port, state_dir=state_dir, name=name, health=health, env=env, keep=(sock.fileno(),), labels=labels
        )
    finally:
        sock.close()  # the child holds its own copy


def start(
    argv: Sequence[str],
    port: int,
    *,
    state_dir: Path,
    name: str,
    health: str,
    env: Mapping[str, str] | None = None,
    keep: Sequence[int] = (),
    labels: Mapping[str, str] | None = None,
    lock: Path | None = None,
) -> Process:
    """Start ``argv`` (listening on ``port``) in its own session: it outlives us, and Ctrl-C does not reach it.

    It is entered in ``state_dir``'s process table with its ``labels`` (its log goes to
    ``state_dir/logs/``): ``shipyard down`` can stop it even when whoever started it is
    gone, and the starter finds what it runs there (the table is the only record of it).
    With ``lock`` (``lock_file``) it holds that lock for as long as it lives, and the lock
    file names it: refused, naming the holder, while another process holds it.
    """
    import psutil

    log = state_dir / "logs" / f"{name.replace('/', '.').replace(' ', '.')}.{port}.log"
    private_dir(log.parent)
    with contextlib.ExitStack() as held:
        if lock is not None:
            try:
                locked = held.enter_context(_take(lock))
            except BlockingIOError:
                raise UserError(
                    f"{name} was not started: another process keeps its store ({lock} is held)",
                    hint="is another `shipyard up` starting it? `shipyard status` shows what runs",
                ) from None
            keep = (*keep, locked.fileno())  # the child's copy holds the lock once ours is closed
        with os.fdopen(open_private(log, os.O_WRONLY | os.O_APPEND), "ab") as output:
            log_from = output.seek(0, os.SEEK_END)
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(keep),
                start_new_session=True,
                env=os.environ | TELEMETRY_OFF | {"PYTHONUNBUFFERED": "1"} | dict(env or {}),
            )
        try:
            record = state_dir / TABLE / f"{child.pid}.json"
            created = psutil.Process(child.pid).create_time()
            started = Process(
                child.pid, created, port, str(log), str(record), name, health, dict(labels or {}), log_from
            )
            if lock is not None:
                locked.write(json.dumps(started.to_dict()))
                locked.flush()
            remember(started)
        except BaseException:
            # Interrupted (Ctrl-C) before it was recorded: nothing would know it, so it goes now.
            _signal(child.pid, signal.SIGKILL)
            child.wait()
            raise
    return started


def remember(process: Process) -> None:
    """Enter ``process`` in its state folder's process table (again, for one found by its lock)."""
    write_private(Path(process.record), json.dumps(process.to_dict(), indent=2))


def lock_file(state_dir: Path, name: str) -> Path:
    """The lock that the process keeping ``name``'s store in ``state_dir`` holds while it lives."""
    return state_dir / LOCKS / f"{name.replace('/', '.').replace(' ', '.')}.lock"


def holder(lock: Path, wait_s: float = 5.0) -> Process | None:
    """The process that holds ``lock`` (``start(lock=...)``), as the lock file names it; None when it is free.

    One that is starting writes its name there just after it took the lock: waited for up
    to ``wait_s``. A holder that names no process of ours is an error that says where to look.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with _take(lock):
                return None  # free: nothing holds it
        except BlockingIOError:
            pass
        found = named_by(lock)
        if found is not None and alive(found):
            return found
        if time.monotonic() > deadline:
            raise UserError(
                f"a process Shipyard does not know holds {lock}",
                hint=f"`fuser -v {lock}` shows which; stop it, then run the command again",
            )
        time.sleep(0.05)


def named_by(lock: Path) -> Process | None:
    """The process ``lock``'s file names as its holder (the last one, if none holds it now); None if none."""
    try:
        return Process.from_dict(json.loads(lock.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


@contextlib.contextmanager
def _take(lock: Path) -> Iterator[IO[str]]:
    """``lock`` taken (BlockingIOError when another process holds it), open to write who holds it."""
    import fcntl

    private_dir(lock.parent)
    with os.fdopen(open_private(lock, os.O_RDWR | os.O_APPEND), "a+", encoding="utf-8") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        file.truncate(0)
        yield file


def free_port(port: int = 0) -> int:
    """``port`` if it is free on 127.0.0.1 (any free one for 0); a clear error if it is taken."""
    with listen(port) as sock:
        return int(sock.getsockname()[1])


def port_for(state_dir: Path, name: str) -> int:
    """The port kept for ``name`` (a free one the first time): a URL stays the same across restarts."""
    file = state_dir / PORTS
    ports: dict[str, int] = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    ports[name] = free_port(ports.get(name, 0))
    write_private(file, json.dumps(ports, indent=2, sort_keys=True))
    return ports[name]


def alive(process: Process) -> bool:
    """Whether our process still runs (not merely some process with its PID)."""
    import psutil

    try:
        found = psutil.Process(process.pid)
        same = abs(found.create_time() - process.started) < 0.01
        return bool(same and found.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def stop(process: Process, grace_s: float = 10.0) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL after ``grace_s``; only if the process is ours.

    Every process we start leads its own process group (its session), so the signals go to
    the group: helpers it started itself (MLflow's job consumers, say) stop with it.
    """
    deadline = time.monotonic() + grace_s
    ours = alive(process)
    if ours:
        # Once: a second SIGTERM makes uvicorn give up its graceful drain.
        _signal(process.pid, signal.SIGTERM)
    while alive(process):
        if time.monotonic() > deadline:
            _signal(process.pid, signal.SIGKILL)
        _reap(process.pid)
        time.sleep(0.05)
    if ours or not _pid_exists(process.pid):
        # The leader is gone; a helper that ignored SIGTERM (or that outlived a leader which
        # died on its own) would still use its store. The group's id is not reused while any
        # member lives, nor while its PID runs again, so this reaches only what is left of ours.
        _signal(process.pid, signal.SIGKILL)
        _wait_group_gone(process.pid)
    if process.record:
        Path(process.record).unlink(missing_ok=True)


def healthy(process: Process) -> bool:
    """Whether the process answers 200 on its health path."""
    return http_status(process.url + process.health) == 200


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """The HTTP status ``url`` answers with, or None when nothing answers there."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 (http URLs of our own)
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_ready(process: Process, timeout_s: float = STARTUP_S) -> None:
    """Poll its health path until it answers 200; fail early, with its output's tail, if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(process):
            raise UserError(f"the process serving port {process.port} exited:\n{tail(process)}")
        if healthy(process):
            return
        time.sleep(0.1)
    raise UserError(f"{process.url}{process.health} was not ready after {timeout_s:.0f} s:\n{tail(process)}")


def starting_for(process: Process) -> float:
    """How much longer ``process`` may take to start (``STARTUP_S`` from its start; 0 once that has passed)."""
    return max(0.0, process.started + STARTUP_S - time.time())


def output(process: Process) -> str:
    """What ``process`` wrote to its log (not what earlier processes on its port wrote there)."""
    try:
        with open(process.log, "rb") as log:
            log.seek(process.log_from)
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def tail(process: Process, lines: int = 15) -> str:
    return "\n".join(output(process).splitlines()[-lines:]) or f"(nothing in {process.log})"


def _signal(pid: int, sent: signal.Signals) -> None:
    """Signal the process group ``pid`` leads (all of it), or just ``pid`` when it leads none."""
    with contextlib.suppress(ProcessLookupError):  # it may exit between the check and the signal
        try:
            leads = os.getpgid(pid) == pid
        except ProcessLookupError:
            leads = True  # the leader is gone: what is left of its group
        if leads:
            os.killpg(pid, sent)
        else:
            os.kill(pid, sent)


def _wait_group_gone(pgid: int, timeout_s: float = 5.0) -> None:
    """Wait until no process of group ``pgid`` runs (a SIGKILL takes a moment): stopped means gone."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = []
        for found in psutil.process_iter(["status"]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(found.pid) == pgid and found.info["status"] != psutil.STATUS_ZOMBIE:
                    left.append(found)
        if not left:
            return
        _reap(pgid)
        time.sleep(0.02)


def _pid_exists(pid: int) -> bool:
    import psutil

    return bool(psutil.pid_exists(pid))


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):  # not our child: started by an earlier shipyard run
        os.waitpid(pid, os.WNOHANG)
