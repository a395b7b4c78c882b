"""The router passes requests through as they came and answers as the model server did, over kept-alive connections.

Issue 18 (item 6) made the hop cheap: the router parses and forwards HTTP/1.1 itself
(httptools) and keeps a pool of connections to each model server. These tests hold it to
what a proxy owes its callers: path, query, body and headers through unchanged (but the
hop-by-hop ones), the model server's status, headers and body back, one upstream connection
reused for sequential requests, a model server that closes connections or is gone handled,
and pipelined requests answered in order. A router is started the way the models plane
starts one, in front of a small HTTP/1.1 server that records what reaches it.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from shipyard.planes.models.serving.local import LocalServing


@dataclass
class Seen:
    """What reached the model server: each request, and the caller port of each connection."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)
    close_each: bool = False  # answer every request with Connection: close
    lock: threading.Lock = field(default_factory=threading.Lock)


def model_server(seen: Seen, idle_s: float = 5.0) -> ThreadingHTTPServer:
    """An HTTP/1.1 server that records requests and echoes them, closing a connection idle for ``idle_s``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept-alive connections, as uvicorn's
        timeout = idle_s

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with seen.lock:
                seen.ports.add(self.client_address[1])
                seen.requests.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                )
            status = 400 if self.path.startswith("/refuse") else 200
            answer = json.dumps({"path": self.path, "length": len(body)}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Model", "echo")
            self.send_header("Content-Length", str(len(answer)))
            if seen.close_each:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def routed(tmp_path: Path) -> Iterator[tuple[LocalServing, Seen, ThreadingHTTPServer]]:
    seen = Seen()
    backend = model_server(seen, idle_s=0.3)
    served = LocalServing(tmp_path / ".shipyard" / "local", "fraud", "fraud-scorer")
    served._ensure_router()
    url = f"http://127.0.0.1:{backend.server_address[1]}"
    served.admin("/-/routes", {"backends": [{"name": "echo", "url": url, "weight": 100}]})
    try:
        yield served, seen, backend
    finally:
        served.stop()
        backend.shutdown()


def connection(served: LocalServing) -> http.client.HTTPConnection:
    assert served.url is not None
    parts = urlsplit(served.url)
    assert parts.hostname is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def post(conn: http.client.HTTPConnection, path: str, body: bytes, **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn.request("POST", path, body, {"Content-Type": "application/json", **headers})
    answer = conn.getresponse()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()


def test_a_request_goes_through_as_it_came_and_the_answer_comes_back_as_given(routed: Any) -> None:
    served, seen, backend = routed
    conn = connection(served)
    body = json.dumps({"instances": [{"amount": 1.5}]}).encode()
    status, headers, answer = post(
        conn, "/v1/models/m:predict?trace=1", body, **{"X-Request-Id": "r-1", "Connection": "keep-alive"}
    )
    assert status == 200
    assert json.loads(answer) == {"path": "/v1/models/m:predict?trace=1", "length": len(body)}
    assert headers["x-model"] == "echo"
    assert headers["content-type"] == "application/json"
    [request] = seen.requests
    assert request["body"] == body
    assert request["headers"]["x-request-id"] == "r-1"
    assert request["headers"]["host"] == f"127.0.0.1:{backend.server_address[1]}"  # the model server's, not ours
    assert "connection" not in request["headers"]  # hop-by-hop: the caller's connection is not the model server's

    status, _, answer = post(conn, "/refuse", b"{}")
    assert status == 400  # the model server's status, not a router error
    assert json.loads(answer)["path"] == "/refuse"


def test_sequential_requests_share_one_kept_alive_connection_to_the_model_server(routed: Any) -> None:
    served, seen, _ = routed
    conn = connection(served)
    for at in range(30):
        status, _, answer = post(conn, f"/v1/models/m:predict?n={at}", b"{}")
        assert status == 200
        assert json.loads(answer)["path"].endswith(f"n={at}")
    assert len(seen.requests) == 30
    assert len(seen.ports) == 1, seen.ports  # one upstream connection, reused

    def caller(_: int) -> None:
        own = connection(served)
        for _ in range(10):
            assert post(own, "/v1/models/m:predict", b"{}")[0] == 200

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(caller, range(4)))
    assert len(seen.ports) <= 5, seen.ports  # at most one connection a request in flight


def test_connections_the_model_server_closes_are_not_errors(routed: Any) -> None:
    served, seen, _ = routed
    conn = connection(served)
    assert post(conn, "/v1/models/m:predict", b"{}")[0] == 200
    time.sleep(0.8)  # the model server closes the connection after 0.3 s idle, as uvicorn does after 5 s
    assert post(conn, "/v1/models/m:predict", b"{}")[0] == 200
    seen.close_each = True  # and a model server that closes each one after answering
    for _ in range(5):
        assert post(conn, "/v1/models/m:predict", b"{}")[0] == 200
    assert len(seen.requests) == 7  # none sent twice
    assert len(seen.ports) >= 6


def test_a_model_server_that_is_gone_is_a_502_naming_it(routed: Any) -> None:
    served, _, _ = routed
    served.admin("/-/routes", {"backends": [{"name": "v9", "url": "http://127.0.0.1:9", "weight": 100}]})
    status, _, answer = post(connection(served), "/v1/models/m:predict", b"{}")
    assert status == 502
    assert "model server v9" in json.loads(answer)["error"]
    [backend] = served.admin("/-/stats")["backends"]
    assert (backend["requests"], backend["errors"]) == (1, 1)


def test_pipelined_requests_are_answered_in_order(routed: Any) -> None:
    served, _, _ = routed
    assert served.url is not None
    port = urlsplit(served.url).port
    assert port is not None
    requests = b"".join(
        b"POST /v1/%d HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}" % at for at in range(3)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(requests + b"GET /-/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    bodies = [piece.split(b"\r\n\r\n", 1)[1] for piece in received.split(b"HTTP/1.1 ")[1:]]
    assert [json.loads(body)["path"] for body in bodies[:3]] == ["/v1/0", "/v1/1", "/v1/2"]
    assert json.loads(bodies[3]) == {"status": "alive"}


def test_an_answer_whose_body_ends_with_the_connection_is_passed_on_whole(routed: Any) -> None:
    served, _, _ = routed
    listening = socket.create_server(("127.0.0.1", 0))

    def answer_once() -> None:  # HTTP/1.1 without Content-Length or chunks: the body runs to the close
        conn, _ = listening.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"predictions": [0.25]}')

    threading.Thread(target=answer_once, daemon=True).start()
    url = f"http://127.0.0.1:{listening.getsockname()[1]}"
    served.admin("/-/routes", {"backends": [{"name": "eof", "url": url, "weight": 100}]})
    try:
        status, headers, body = post(connection(served), "/v1/models/m:predict", b"{}")
    finally:
        listening.close()
    assert (status, json.loads(body)) == (200, {"predictions": [0.25]})
    assert headers["content-length"] == str(len(body))
