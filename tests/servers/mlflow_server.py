"""A real MLflow tracking server on 127.0.0.1 (SQLite backend, artifacts proxied from a local folder),
started by the test run with the command line ``shipyard up`` uses."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shipyard.planes.models import mlflow_server_command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """Start ``mlflow server`` keeping its state in ``folder``; yields its URL, stops it after."""
    port = _free_port()
    server = subprocess.Popen(
        mlflow_server_command(port, folder),  # the local platform's own command line
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
                server.kill()
                raise RuntimeError("the MLflow server did not start") from None
            time.sleep(0.3)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
