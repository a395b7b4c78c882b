"""A long-lived helper process that runs a plane's heavy or untrusted work.

Team code (Feast definitions, KFP pipelines) and heavy libraries never load into
the engine: a plane sends JSON requests to a worker process that imports them
once and answers each request on one line. The worker keeps the protocol on a
private pipe; anything the libraries print goes to a log file, shown when a
request fails.

Example::

    worker = Worker("shipyard.planes.features.tasks")
    resources = worker.call("desired", root=str(root), teams=teams)

Team code runs without the engine's secrets. On a pull request the teams' code is the PR
author's, and a CI runner holds credentials, so a plane runs the work that imports team code
for ``desired`` (compiling pipelines, reading Feast definitions) in a worker started with
``scrubbed=True``: only the variables ``scrubbed_environment`` keeps (where programs, home,
locale, time zone, temporary files and the virtual environment are) and ``TELEMETRY_OFF``
reach it, never a cloud's, CI's or tracking server's credentials. Work that needs them
(registry reads, Feast's apply, training runs) goes to a second worker of the same module
with the full environment.

The tasks module defines ``task_<method>(**params) -> JSON-able``. A task raises
``UserError`` for the user's mistakes; the engine re-raises it with the same
message and hint.

A worker and everything it starts (the KFP local runner's task processes, say) die with
the engine, however the engine ends, SIGKILL included: orphans finishing a training run
would register a model version the next apply registers again. On POSIX the worker leads
a process group of its own and holds the read end of a *lifeline*, a pipe whose only write
end is the engine's; the kernel closes that end when the engine process ends, and the
worker's watchdog thread then kills its whole group (itself last). The engine kills the
group too when it closes a worker or finds it dead. A pipe rather than Linux's parent-death
signal, which fires when the parent *thread* that started the worker exits, not the process,
and reaches only the worker, not what it started. Elsewhere workers end when their pipe
closes, between requests.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from shipyard.sdk.errors import InternalError, UserError
from shipyard.sdk.extras import missing_dependency
from shipyard.sdk.processes import TELEMETRY_OFF

_LOG_TAIL = 4000
#: Process groups and inherited pipes: what makes a worker's tree die with the engine.
_POSIX = os.name == "posix"


#: What a worker that runs team code keeps of the engine's environment: what Python and the
#: libraries need to start and read files, and nothing that grants access to anything.
SCRUBBED_KEEP = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "USER",
        "LOGNAME",
        "VIRTUAL_ENV",
        "PYTHONPATH",  # where the engine's own packages are, when it runs from a source tree
        "SYSTEMROOT",  # Windows: Python cannot start without it
    }
)
SCRUBBED_PREFIXES = ("LC_",)
#: Never kept, whatever the name's prefix: a credential's name usually says so.
_CREDENTIAL = ("TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "KEY")


def scrubbed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` team code may see: the names in ``SCRUBBED_KEEP`` and the locale's ``LC_*``.

    Pure: ``environ`` is read, never changed. Cloud, CI and tracking credentials (``AWS_*``,
    ``GITHUB_*``, ``MLFLOW_TRACKING_*``, ``KUBECONFIG``, ``PULUMI_*``, any ``*TOKEN*``,
    ``*SECRET*`` or ``*PASSWORD*``) are left out, as is everything not named.
    """
    return {
        name: value
        for name, value in environ.items()
        if (name in SCRUBBED_KEEP or name.startswith(SCRUBBED_PREFIXES))
        and not any(word in name.upper() for word in _CREDENTIAL)
    }


class WorkerError(InternalError):
    """The worker process died or answered something that is not the protocol."""


class Worker:
    """One worker process per tasks module, started on first use, stopped at exit.

    It runs with the caller's environment as it is when the process starts (with ``scrubbed``,
    only what ``scrubbed_environment`` keeps of it: a worker that runs team code); when a later
    call finds that environment changed (other credentials or endpoints, in a process that runs
    several commands), the process is started again, as libraries read it once.
    """

    def __init__(self, module: str, env: dict[str, str] | None = None, *, scrubbed: bool = False) -> None:
        self.module = module
        self.env = env or {}
        self.scrubbed = scrubbed
        self._process: subprocess.Popen[str] | None = None
        self._log: TextIO | None = None
        self._started_with: dict[str, str] = {}
        self._lifeline: int | None = None  # our end of the pipe: the worker's tree dies when it closes

    def start(self) -> None:
        """Start the process now (it imports its libraries while the caller does other work)."""
        self._start()

    def _start(self) -> subprocess.Popen[str]:
        env = (scrubbed_environment(os.environ) if self.scrubbed else dict(os.environ)) | TELEMETRY_OFF | self.env
        if self._process is not None and (env != self._started_with or self._exited()):
            self.close()
        if self._process is None:
            self._log = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - lives as long as the worker
            argv = [sys.executable, "-m", "shipyard.sdk.worker", self.module]
            tree: dict[str, Any] = {}
            lifeline = None
            if _POSIX:
                # os.pipe() is not inherited: the worker gets the read end (pass_fds), only we hold the write end.
                lifeline, self._lifeline = os.pipe()
                argv.append(str(lifeline))
                tree = {"pass_fds": (lifeline,), "process_group": 0}
            try:
                self._process = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self._log,
                    text=True,
                    env=env,
                    **tree,
                )
            finally:
                if lifeline is not None:
                    os.close(lifeline)
            self._started_with = env
            atexit.register(self.close)
        return self._process

    def call(self, method: str, **params: Any) -> Any:
        process = self._start()
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(json.dumps({"method": method, "params": params}) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except BrokenPipeError:
            line = ""
        except BaseException:
            # Interrupted mid-request (Ctrl-C in a training run): its answer would come to the next
            # call, and what it started must not go on without us. Stop it and its tree now.
            self._kill_tree()
            self.close()
            raise
        if not line:
            log = self.log_tail()
            self._kill_tree()  # the task processes it started must not go on without it
            self.close()
            raise WorkerError(f"the {self.module} worker stopped during '{method}':\n{log}")
        answer = json.loads(line)
        if "error" in answer:
            raise _rebuild(answer["error"], self.log_tail())
        return answer["ok"]

    def log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read()
        self._log.seek(0, os.SEEK_END)
        return text[-_LOG_TAIL:]

    def close(self) -> None:
        """Stop the worker (an idle one ends when its stdin closes) and whatever of its tree is left."""
        process = self._process
        if process is not None:
            if not self._exited():
                assert process.stdin is not None
                with contextlib.suppress(OSError):
                    process.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
            self._kill_tree()  # still busy after 10 s, or died leaving task processes behind
            process.wait()
        self._process = None
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _exited(self) -> bool:
        """Whether the worker has exited, without reaping it: until it is reaped, its PID (its
        group's id) cannot name another process, so ``_kill_tree`` reaches only what is ours."""
        process = self._process
        if process is None or process.returncode is not None:
            return True
        if not hasattr(os, "waitid"):
            return process.poll() is not None
        try:
            return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return process.poll() is not None

    def _kill_tree(self) -> None:
        """SIGKILL the worker's process group: the worker and every task process it started."""
        process = self._process
        if process is None or process.returncode is not None:
            return  # reaped: its PID may be another process's by now
        if not _POSIX:
            with contextlib.suppress(OSError):
                process.kill()
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def _rebuild(error: dict[str, Any], log: str) -> Exception:
    if error["type"] == "user":
        return UserError(error["message"], hint=error.get("hint", ""))
    return WorkerError(f"{error['message']}\n{error.get('traceback', '')}{log}")


@contextlib.contextmanager
def team_code(folder: Path) -> Iterator[None]:
    """Import team code from ``folder``, then forget the modules loaded from it.

    Teams' files share names (every team has a ``features.py``), so each import starts
    clean. Libraries the code pulled in stay loaded: some cannot be loaded twice.
    """
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            if (getattr(sys.modules[name], "__file__", None) or "").startswith(str(folder)):
                del sys.modules[name]


#: Held while an answer is written; the lifeline's watchdog takes it for good before it kills the tree, so
#: a task process it kills cannot let the worker answer, meet the closed pipe, and exit before the kill is done.
_answering = threading.Lock()


def _watch(lifeline: int) -> None:
    """Kill this worker's tree once the engine's end of ``lifeline`` closes (the engine ended, however)."""
    import psutil  # now, not while the tree is to be killed

    def wait_for_the_engine() -> None:
        while True:
            try:
                if not os.read(lifeline, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        _answering.acquire()
        _end_tree(psutil.Process().children(recursive=True))

    threading.Thread(target=wait_for_the_engine, name="shipyard-lifeline", daemon=True).start()


def _end_tree(descendants: list[Any]) -> None:
    """SIGKILL everything this worker started, then the worker: its process group, and descendants that left it."""
    for child in descendants:
        with contextlib.suppress(Exception):  # psutil.Error: gone already
            child.kill()
    if os.getpgrp() == os.getpid():  # never the group of whoever started us without one of our own
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


def serve(module_name: str, lifeline: int | None = None) -> None:
    """The worker's side: answer requests from stdin until it closes; end with the engine (``lifeline``)."""
    if lifeline is not None:
        _watch(lifeline)
    # The protocol gets a private copy of stdout; fd 1 then points at stderr (the
    # log), so whatever the libraries print cannot corrupt an answer.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        tasks: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        tasks = error  # answered below, request by request, with the install command
    for line in sys.stdin:
        request = json.loads(line)
        try:
            try:
                if isinstance(tasks, ModuleNotFoundError):
                    raise tasks
                result = {"ok": getattr(tasks, "task_" + request["method"])(**request["params"])}
            except ModuleNotFoundError as error:
                missing = missing_dependency(error)  # one of our extras: say how to install it
                if missing is None:
                    raise
                raise missing from error
        except UserError as error:
            result = {"error": {"type": "user", "message": error.message, "hint": error.hint}}
        except Exception as error:
            result = {"error": {"type": "internal", "message": repr(error), "traceback": traceback.format_exc()}}
        with _answering:
            protocol.write(json.dumps(result, default=str) + "\n")
            protocol.flush()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
