"""The loopback router in front of one deployment's model servers: its URL stays while versions change.

Run as ``python -m shipyard.planes.models.serving.router --fd FD --token-file PATH``. It
forwards every request to one of its backends, chosen by weight with smooth weighted
round-robin (so a 10 % canary gets exactly every tenth request, not roughly). Under ``/-/``
it answers its owner, the models plane. The admin calls (routes, stats) need the token its
owner wrote for this start (a 0600 file in the state folder) as ``Authorization: Bearer``, and
a ``Host`` naming loopback: any other local process, or a web page rebinding a DNS name to
127.0.0.1, can neither blackhole nor redirect its traffic. A bad body is a 400.

- ``PUT /-/routes`` ``{"backends": [{"name", "url", "weight"}]}`` replaces the backends
  at once. Requests already sent to a backend that left finish there (it drains), and
  every backend's counters start again: a routing change opens a new window.
- ``GET /-/stats``: per backend, requests, 5xx errors, in-flight requests and latencies
  (ms) in the current window; backends still draining are listed too.
- ``GET /-/healthz``: it routes somewhere (503 when it has no backend). ``GET /-/live``: it answers.

That is what a rolling replacement needs (switch, then stop the old server once it has
nothing in flight) and what a canary analysis reads.

The hop costs little (README "Local serving"): requests and answers are parsed by
httptools (the C parser uvicorn uses) on uvloop's event loop, and passed on with their raw
headers, each written in one piece; each backend keeps a pool of kept-alive connections
(``Upstream``). aiohttp's server and client, which it used before, took about three times
the CPU for a hop; on a laptop's two cores, that CPU is taken from the model server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httptools  # comes with KServe (uvicorn[standard]), which every model server runs on

#: Headers of one connection, not of the request: never passed on (either way).
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade", "expect", "te"}
HOP_BY_HOP_RAW = {name.encode() for name in HOP_BY_HOP}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
KEPT_LATENCIES = 20_000
#: How long a model server may take to answer (a generous bound: a batch can be large).
UPSTREAM_TIMEOUT_S = 300.0
#: Idle kept-alive connections kept per model server; more are closed once their answer is read.
IDLE_CONNECTIONS = 64


class UpstreamError(ConnectionError):
    """The model server could not be reached, closed the connection before answering, or took too long."""


class _Exchange(asyncio.Protocol):
    """One kept-alive connection to a model server, carrying one request at a time."""

    def __init__(self, pool: Upstream) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0
        self.heard = False  # any byte of an answer on this request
        self.skip_body = False  # a HEAD request's answer has none, whatever its Content-Length says
        self.closed = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.heard = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the model server asked to switch protocols")
        except httptools.HttpParserError as error:
            self._fail(f"the model server's answer is not HTTP/1.1: {error}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.answer is None or self.answer.done():
            return
        framed = any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in self.headers)
        if exc is None and self.status >= 200 and not framed:  # an answer whose body ends where the connection does
            self._done(keep=False)
            return
        self.answer.set_exception(UpstreamError(f"the model server closed the connection: {exc or 'EOF'}"))

    # -- httptools callbacks --

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.skip_body:
            self._done(keep=False)

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer (100 Continue): the real one follows
            self.headers, self.body = [], []
            return
        if not self.skip_body:
            self._done(keep=self.parser.should_keep_alive())

    # -- the exchange --

    def send(
        self, head: bytes, body: bytes, skip_body: bool
    ) -> asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.headers, self.body, self.status, self.heard, self.skip_body = [], [], 0, False, skip_body
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)  # a large body is not copied once more to join it to the head
        return self.answer

    def _done(self, keep: bool) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            answer.set_result((self.status, self.headers, b"".join(self.body)))
        if keep and not self.closed:
            self.pool.give_back(self)
        else:
            self.close()

    def _fail(self, message: str) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(UpstreamError(message))
        self.close()

    def close(self) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.close()


class Upstream:
    """A model server's pool of kept-alive HTTP/1.1 connections: one in use per request in flight."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"a backend is http://HOST:PORT, not {url!r}")
        self.host, self.port = parts.hostname, parts.port
        self.authority = parts.netloc.encode()
        self.idle: list[_Exchange] = []

    async def request(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send one request (``target``: its path and query, as the caller sent them) and read its whole answer."""
        lines = [method.encode("ascii") + b" " + target + b" HTTP/1.1\r\n", b"host: " + self.authority + b"\r\n"]
        lines += [name + b": " + value + b"\r\n" for name, value in headers]
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        lines.append(b"\r\n")
        head = b"".join(lines)
        loop = asyncio.get_running_loop()
        while True:
            reused = bool(self.idle)
            exchange = self.idle.pop() if reused else await self._connect()
            answer = exchange.send(head, body, skip_body=method == "HEAD")
            timer = loop.call_later(UPSTREAM_TIMEOUT_S, _time_out, exchange, answer)
            try:
                return await answer
            except UpstreamError:
                # A kept-alive connection the server closed as it sat idle (uvicorn does after 5 s)
                # fails before any answer: the request goes again on another (in the end a fresh) one. A
                # server that read it and died unanswered would get it twice; a prediction is safe
                # to repeat, and a dead server refuses the fresh connection anyway (502).
                if reused and not exchange.heard:
                    continue
                raise
            except asyncio.CancelledError:
                exchange.close()  # its answer would arrive for nobody: the connection cannot be reused
                raise
            finally:
                timer.cancel()

    async def _connect(self) -> _Exchange:
        loop = asyncio.get_running_loop()
        try:
            _, exchange = await loop.create_connection(lambda: _Exchange(self), self.host, self.port)
        except OSError as error:
            raise UpstreamError(f"cannot connect: {error}") from error
        transport = exchange.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        if sock is not None:  # small requests and answers: no Nagle delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return exchange

    def give_back(self, exchange: _Exchange) -> None:
        if len(self.idle) < IDLE_CONNECTIONS:
            self.idle.append(exchange)
        else:
            exchange.close()

    def forget(self, exchange: _Exchange) -> None:
        if exchange in self.idle:
            self.idle.remove(exchange)

    def close(self) -> None:
        for exchange in list(self.idle):
            exchange.close()


def _time_out(exchange: _Exchange, answer: asyncio.Future[Any]) -> None:
    if exchange.answer is answer:  # still waiting for this answer (not a later request's on the same connection)
        exchange._fail(f"the model server did not answer within {UPSTREAM_TIMEOUT_S:.0f} s")


@dataclass
class Backend:
    name: str
    url: str
    weight: int
    current: int = 0  # smooth weighted round-robin state
    requests: int = 0
    errors: int = 0
    in_flight: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=KEPT_LATENCIES))
    upstream: Upstream = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.upstream = Upstream(self.url)

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "weight": self.weight,
            "requests": self.requests,
            "errors": self.errors,
            "inFlight": self.in_flight,
            "latenciesMs": list(self.latencies_ms),
        }


#: What a request answered here is: its status, headers (raw, lower-case names) and body.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
JSON = [(b"content-type", b"application/json")]
MAX_BODY = 64 * 1024**2  # the largest request body taken (a batch of rows), as aiohttp's client_max_size was
QUEUED = 16  # requests pipelined on one connection before it stops reading more
DRAIN_S = 30.0  # how long a SIGTERM waits for requests in flight


def _json(status: int, value: Any) -> Answer:
    return status, JSON, json.dumps(value).encode()


class Router:
    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.backends: list[Backend] = []
        self.draining: list[Backend] = []
        self.in_flight = 0  # requests being answered, of every kind: a graceful stop waits for them

    def pick(self) -> Backend | None:
        """Smooth weighted round-robin: exact shares, spread evenly over time."""
        total = sum(b.weight for b in self.backends)
        if total <= 0:
            return None
        for backend in self.backends:
            backend.current += backend.weight
        chosen = max(self.backends, key=lambda b: b.current)
        chosen.current -= total
        return chosen

    def route(self, backends: list[dict[str, Any]]) -> None:
        routed = [Backend(str(b["name"]), str(b["url"]).rstrip("/"), int(b["weight"])) for b in backends]
        for left in (*self.draining, *self.backends):
            if left.in_flight == 0:
                left.upstream.close()  # a backend that left keeps no idle connection to a server about to stop
        self.draining = [b for b in (*self.draining, *self.backends) if b.in_flight > 0]
        self.backends = routed

    async def answer(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        """The answer to one request: an admin call under ``/-/``, any other forwarded to a backend."""
        if not target.startswith(b"/-/"):
            return await self.forward(method, target, headers, body)
        path = target.split(b"?", 1)[0].decode("latin-1")
        calls: dict[str, tuple[str, Callable[[list[tuple[bytes, bytes]], bytes], Answer]]] = {
            "/-/routes": ("PUT", self.put_routes),
            "/-/stats": ("GET", self.stats),
            "/-/healthz": ("GET", self.healthz),
            "/-/live": ("GET", self.live),
        }
        if path not in calls:
            return _json(404, {"error": f"no admin call {path}; there are " + ", ".join(calls)})
        wanted, call = calls[path]
        if method != wanted:
            return _json(405, {"error": f"{path} is called with {wanted}"})
        if path in ("/-/routes", "/-/stats"):
            refused = self.owner_only(headers)
            if refused is not None:
                return refused
        return call(headers, body)

    def owner_only(self, headers: list[tuple[bytes, bytes]]) -> Answer | None:
        """Admin calls come from the owner: a loopback ``Host`` and this start's token (None: they do)."""
        host = _header(headers, b"host").decode("latin-1").rsplit(":", 1)[0]
        if host not in LOOPBACK_HOSTS:
            return _json(403, {"error": "admin calls must name a loopback host"})
        given = _header(headers, b"authorization").removeprefix(b"Bearer ")
        if not hmac.compare_digest(given, self.token):
            return _json(401, {"error": "admin calls need this router's token"})
        return None

    async def forward(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        backend = self.pick()
        if backend is None:
            return _json(503, {"error": "no model server is routed yet"})
        passed = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP_RAW]
        backend.in_flight += 1
        started = time.perf_counter()
        try:
            status, raw, payload = await backend.upstream.request(method, target, passed, body)
            kept = [(k, v) for k, v in raw if k.lower() not in HOP_BY_HOP_RAW]
        except UpstreamError as error:
            status, kept, payload = _json(502, {"error": f"model server {backend.name}: {error}"})
        finally:
            backend.in_flight -= 1
            if backend.in_flight == 0 and backend not in self.backends:
                backend.upstream.close()  # the last request of a backend that left: its connections go
        backend.requests += 1
        backend.errors += status >= 500
        backend.latencies_ms.append((time.perf_counter() - started) * 1000)
        return status, kept, payload

    def put_routes(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        try:
            backends = json.loads(body)["backends"]
            for backend in backends:
                if int(backend["weight"]) < 0 or not str(backend["url"]).startswith("http://127.0.0.1:"):
                    raise ValueError("a backend is a loopback URL with a weight of 0 or more")
                Upstream(str(backend["url"]).rstrip("/"))  # a URL it can connect to (http://127.0.0.1:PORT)
            self.route(backends)
        except (ValueError, KeyError, TypeError) as error:  # json's JSONDecodeError is a ValueError
            message = f"expected {{'backends': [{{'name', 'url', 'weight'}}]}}: {type(error).__name__}: {error}"
            return _json(400, {"error": message[:300]})
        return _json(200, {"backends": [b.name for b in self.backends]})

    def stats(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        self.draining = [b for b in self.draining if b.in_flight > 0]
        return _json(
            200, {"backends": [b.stats() for b in self.backends], "draining": [b.stats() for b in self.draining]}
        )

    def healthz(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        """Healthy only while it routes somewhere: a router with no backend answers every request 503."""
        routed = sum(1 for b in self.backends if b.weight > 0)
        if not routed:
            return _json(503, {"status": "no model server is routed", "backends": 0})
        return _json(200, {"status": "ok", "backends": routed})

    def live(self, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        """The process answers (what its start waits for, before the first route)."""
        return _json(200, {"status": "alive"})


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    return next((v for k, v in headers if k.lower() == name), b"")


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class _Caller(asyncio.Protocol):
    """One caller's connection to the router: HTTP/1.1 requests parsed by httptools, answered in order."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[tuple[str, bytes, list[tuple[bytes, bytes]], bytes, bool]] = deque()
        self.serving = False
        self.paused = False  # reading, while too many requests wait on this connection
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(501, "this router does not switch protocols")
        except httptools.HttpParserError as error:
            self._refuse(400, f"not an HTTP/1.1 request: {error}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.queue.clear()

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body, self.size = b"", [], [], 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.transport is not None and _header(self.headers, b"expect").lower() == b"100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            raise httptools.HttpParserError(f"the body is over {MAX_BODY} bytes")  # answered 400, connection closed
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode("latin-1")
        request = (method, self.url, self.headers, b"".join(self.body), self.parser.should_keep_alive())
        self.queue.append(request)
        if len(self.queue) > QUEUED and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if not self.serving:
            self.serving = True
            asyncio.get_running_loop().create_task(self._serve())

    # -- answering --

    async def _serve(self) -> None:
        """Answer the queued requests in the order they came (HTTP/1.1 pipelining keeps answers in order)."""
        try:
            while self.queue and self.transport is not None:
                method, target, headers, body, keep_alive = self.queue.popleft()
                self.router.in_flight += 1
                try:
                    status, answer_headers, payload = await self.router.answer(method, target, headers, body)
                except Exception as error:  # a bug here must not end the router: the caller gets a 500
                    logging.getLogger(__name__).exception("answering %s %r", method, target)
                    status, answer_headers, payload = _json(500, {"error": f"router: {type(error).__name__}"})
                finally:
                    self.router.in_flight -= 1
                self._write(method, status, answer_headers, payload, keep_alive)
                if not keep_alive:
                    if self.transport is not None:
                        self.transport.close()
                    return
                if self.paused and self.transport is not None and len(self.queue) <= QUEUED:
                    self.paused = False
                    self.transport.resume_reading()
        finally:
            self.serving = False

    def _write(self, method: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # the caller left; the answer is for nobody
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))]
        lines += [name + b": " + value + b"\r\n" for name, value in headers]
        if method == "HEAD":  # no body, and the length the model server gave, if any
            lines.append(b"\r\n")
            self.transport.write(b"".join(lines))
            return
        lines.append(b"content-length: %d\r\n" % len(body))
        if not keep:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        self.transport.write(b"".join(lines) + body)

    def _refuse(self, status: int, message: str) -> None:
        if self.transport is not None:
            self.queue.clear()
            _, headers, body = _json(status, {"error": message})
            self._write("POST", status, headers, body, keep=False)
            self.transport.close()
            self.transport = None


async def serve(router: Router, listening: socket.socket) -> None:
    """Answer on ``listening`` until SIGTERM or SIGINT, then let requests in flight finish (up to ``DRAIN_S``)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Caller(router), sock=listening, backlog=1024)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    server.close()  # no new connections; those open keep being answered while requests are in flight
    deadline = loop.time() + DRAIN_S
    while router.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.02)
    for backend in (*router.backends, *router.draining):
        backend.upstream.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="a listening socket bound to 127.0.0.1")
    parser.add_argument("--token-file", type=Path, required=True, help="the admin token of this start (0600)")
    args = parser.parse_args()
    token = args.token_file.read_text(encoding="utf-8").strip()
    try:  # uvloop comes with KServe's uvicorn[standard] where it builds (not on Windows); else asyncio's own loop
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    listening = socket.socket(fileno=args.fd)
    listening.setblocking(False)
    with contextlib.closing(loop):
        loop.run_until_complete(serve(Router(token), listening))


if __name__ == "__main__":
    main()
