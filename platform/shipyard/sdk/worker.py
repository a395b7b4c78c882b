"""A long-lived helper process that runs a plane's heavy or untrusted work.

Team code (Feast definitions, KFP pipelines) and heavy libraries never load into
the engine: a plane sends JSON requests to a worker process that imports them
once and answers each request on one line. The worker keeps the protocol on a
private pipe; anything the libraries print goes to a log file, shown when a
request fails.

Example::

    worker = Worker("shipyard.planes.features.tasks")
    resources = worker.call("desired", root=str(root), teams=teams)

The tasks module defines ``task_<method>(**params) -> JSON-able``. A task raises
``UserError`` for the user's mistakes; the engine re-raises it with the same
message and hint.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from shipyard.sdk.errors import InternalError, UserError
from shipyard.sdk.extras import missing_dependency
from shipyard.sdk.processes import TELEMETRY_OFF

_LOG_TAIL = 4000


class WorkerError(InternalError):
    """The worker process died or answered something that is not the protocol."""


class Worker:
    """One worker process per tasks module, started on first use, stopped at exit.

    It runs with the caller's environment as it is when the process starts; when a later call
    finds that environment changed (other credentials or endpoints, in a process that runs
    several commands), the process is started again, as libraries read it once.
    """

    def __init__(self, module: str, env: dict[str, str] | None = None) -> None:
        self.module = module
        self.env = env or {}
        self._process: subprocess.Popen[str] | None = None
        self._log: TextIO | None = None
        self._started_with: dict[str, str] = {}

    def start(self) -> None:
        """Start the process now (it imports its libraries while the caller does other work)."""
        self._start()

    def _start(self) -> subprocess.Popen[str]:
        env = os.environ | TELEMETRY_OFF | self.env
        if self._process is not None and env != self._started_with:
            self.close()
        if self._process is None or self._process.poll() is not None:
            self._log = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - lives as long as the worker
            self._process = subprocess.Popen(
                [sys.executable, "-m", "shipyard.sdk.worker", self.module],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                text=True,
                env=env,
            )
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
        if not line:
            raise WorkerError(f"the {self.module} worker stopped during '{method}':\n{self.log_tail()}")
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
        if self._process is not None and self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


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


def serve(module_name: str) -> None:
    """The worker's side: answer requests from stdin until it closes."""
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
        protocol.write(json.dumps(result, default=str) + "\n")
        protocol.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
