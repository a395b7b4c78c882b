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
"""

from __future__ import annotations

import argparse
import hmac
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web
from aiohttp.typedefs import Middleware

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
KEPT_LATENCIES = 20_000


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


class Router:
    def __init__(self) -> None:
        self.backends: list[Backend] = []
        self.draining: list[Backend] = []
        self.session: ClientSession | None = None

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
        self.draining = [b for b in (*self.draining, *self.backends) if b.in_flight > 0]
        self.backends = [Backend(str(b["name"]), str(b["url"]).rstrip("/"), int(b["weight"])) for b in backends]

    async def forward(self, request: web.Request) -> web.Response:
        backend = self.pick()
        if backend is None:
            return web.json_response({"error": "no model server is routed yet"}, status=503)
        assert self.session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        backend.in_flight += 1
        started = time.perf_counter()
        try:
            async with self.session.request(
                request.method, backend.url + request.path_qs, data=body, headers=headers
            ) as answer:
                payload = await answer.read()
                status = answer.status
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        except (ClientError, TimeoutError) as error:
            status, payload = 502, f'{{"error": "model server {backend.name}: {error}"}}'.encode()
            kept = {"Content-Type": "application/json"}
        finally:
            backend.in_flight -= 1
        backend.requests += 1
        backend.errors += status >= 500
        backend.latencies_ms.append((time.perf_counter() - started) * 1000)
        return web.Response(status=status, body=payload, headers=kept)

    async def put_routes(self, request: web.Request) -> web.Response:
        try:
            backends = (await request.json())["backends"]
            for backend in backends:
                if int(backend["weight"]) < 0 or not str(backend["url"]).startswith("http://127.0.0.1:"):
                    raise ValueError("a backend is a loopback URL with a weight of 0 or more")
            self.route(backends)
        except (ValueError, KeyError, TypeError) as error:
            message = f"expected {{'backends': [{{'name', 'url', 'weight'}}]}}: {type(error).__name__}: {error}"
            return web.json_response({"error": message[:300]}, status=400)
        return web.json_response({"backends": [b.name for b in self.backends]})

    async def stats(self, request: web.Request) -> web.Response:
        self.draining = [b for b in self.draining if b.in_flight > 0]
        return web.json_response(
            {"backends": [b.stats() for b in self.backends], "draining": [b.stats() for b in self.draining]}
        )

    async def healthz(self, request: web.Request) -> web.Response:
        """Healthy only while it routes somewhere: a router with no backend answers every request 503."""
        routed = sum(1 for b in self.backends if b.weight > 0)
        if not routed:
            return web.json_response({"status": "no model server is routed", "backends": 0}, status=503)
        return web.json_response({"status": "ok", "backends": routed})

    async def live(self, request: web.Request) -> web.Response:
        """The process answers (what its start waits for, before the first route)."""
        return web.json_response({"status": "alive"})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def owner_only(token: str) -> Middleware:
    """Admin calls come from the owner: a loopback ``Host`` and this start's token."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in ("/-/routes", "/-/stats"):
            host = (request.host or "").rsplit(":", 1)[0]
            if host not in LOOPBACK_HOSTS:
                return web.json_response({"error": "admin calls must name a loopback host"}, status=403)
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return web.json_response({"error": "admin calls need this router's token"}, status=401)
        return await handler(request)

    return check


def app(token: str) -> web.Application:
    router = Router()
    application = web.Application(client_max_size=64 * 1024**2, middlewares=[owner_only(token)])

    async def session(application: web.Application) -> Any:
        # The model servers are on loopback: many kept-alive connections, a generous read timeout.
        router.session = ClientSession(connector=TCPConnector(limit=256), timeout=ClientTimeout(total=300))
        yield
        await router.session.close()

    application.cleanup_ctx.append(session)
    application.router.add_put("/-/routes", router.put_routes)
    application.router.add_get("/-/stats", router.stats)
    application.router.add_get("/-/healthz", router.healthz)
    application.router.add_get("/-/live", router.live)
    application.router.add_route("*", "/{tail:.*}", router.forward)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="a listening socket bound to 127.0.0.1")
    parser.add_argument("--token-file", type=Path, required=True, help="the admin token of this start (0600)")
    args = parser.parse_args()
    token = args.token_file.read_text(encoding="utf-8").strip()
    web.run_app(app(token), sock=socket.socket(fileno=args.fd), print=None, access_log=None, shutdown_timeout=30)


if __name__ == "__main__":
    main()
