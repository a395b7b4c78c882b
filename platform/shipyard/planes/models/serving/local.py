"""The local target's serving of one deployment: a router on a stable port, model servers behind it.

What runs is read from the local platform's process table (``sdk.processes``): each
process is entered with labels naming its deployment, its role (router or model
server) and, for a model server, the version and the digest of the InferenceService
manifest it serves. The router keeps its port across restarts. Changing versions
never leaves the URL without a ready server:

- **rolling replacement**: start the new server, wait until its model is ready, route
  everything to it, wait until the old one has nothing in flight, stop the old one;
- **canary**: start the new server, route ``percent`` of requests to it, send probe
  requests through the router, compare the two (``analysis``), then keep one of them.
  A canary an apply was killed in leaves both servers running: the next one starts from
  them (the candidate's server is used again), in a fresh window, and stops any other.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.planes.models.serving.analysis import Problem, Window, problems, settle
from shipyard.planes.models.spec import Canary
from shipyard.sdk import processes
from shipyard.sdk.errors import StalePlanError, UserError
from shipyard.sdk.processes import Process
from shipyard.sdk.store import write_private

ROUTER = "shipyard.planes.models.serving.router"
SERVER = "shipyard.planes.models.serving.server"
DEPLOYMENT, ROLE = "deployment", "role"  # the labels of this module's processes in the process table
DRAIN_TIMEOUT_S = 30.0
WARM_UP_REQUESTS = 20

#: Sends probe requests to a URL: how a canary gets traffic when nobody else is calling.
Probe = Callable[[str, int], object]


@dataclass(frozen=True)
class Release:
    """What to serve: a registered model version, from which registry, for which InferenceService manifest."""

    model: str
    version: int
    tracking_uri: str
    digest: str


@dataclass(frozen=True)
class ModelServer:
    """A KServe model server for one model version."""

    version: int
    digest: str  # of the InferenceService manifest it was started for
    process: Process

    @property
    def backend(self) -> str:
        return f"v{self.version}-{self.process.port}"


class LocalServing:
    """One deployment's router and model servers on 127.0.0.1."""

    def __init__(self, state_dir: Path, team: str, name: str) -> None:
        self.state_dir = state_dir
        self.label = f"{team}/{name}"
        self.name = name
        mine = [p for p in processes.table(state_dir) if p.labels.get(DEPLOYMENT) == self.label]
        self.router: Process | None = next((p for p in mine if p.labels[ROLE] == "router"), None)
        self.servers = [
            ModelServer(int(p.labels["version"]), p.labels["digest"], p) for p in mine if p.labels[ROLE] == "server"
        ]

    @property
    def url(self) -> str | None:
        return self.router.url if self.router is not None else None

    def serving(self) -> ModelServer | None:
        """The server taking all traffic, when it and the router run and the router routes all of it there.

        The router's table is observed like any other state: a router that lost its routes (killed
        between its start and its first route, or told to route nowhere) serves nothing.
        """
        if self.router is None or not processes.alive(self.router) or len(self.servers) != 1:
            return None
        server = self.servers[0]
        if not processes.alive(server.process):
            return None
        return server if self._routed() == [server.process.url.rstrip("/")] else None

    def roll_out(self, release: Release) -> None:
        """Serve ``release``; a running server for another version or manifest is replaced without a gap."""
        current = self.serving()
        if current is not None and (current.version, current.digest) == (release.version, release.digest):
            return
        wanted = (release.version, release.digest)
        running = [s for s in self.servers if processes.alive(s.process) and (s.version, s.digest) == wanted]
        new = running[0] if running else self._start(release)  # one that lost its route is routed again
        self._route([(new, 100)])
        for old in [s for s in self.servers if s is not new]:
            self._retire(old)

    def canary(
        self,
        release: Release,
        canary: Canary,
        probe: Probe,
        stable_version: int,
        decided: Callable[[list[str]], None] = lambda found: None,
    ) -> list[str]:
        """Try ``release`` on ``canary.percent`` of traffic beside the server of ``stable_version``; keep it if the
        analysis finds nothing, else go back. ``decided`` gets the verdict before either server is stopped.

        A candidate server a killed canary left running (same version and manifest) is used again; any other
        server of the deployment is stopped once the canary's routes are set.
        """
        running = [s for s in self.servers if processes.alive(s.process)]
        stable = next((s for s in running if s.version == stable_version), None)
        if stable is None:
            raise StalePlanError(
                f"a canary of {self.label} version {release.version} needs version {stable_version} serving, "
                "and no model server runs it now",
                hint="plan again",
            )
        left = (release.version, release.digest)
        candidate = next((s for s in running if s is not stable and (s.version, s.digest) == left), None)
        if candidate is None:
            candidate = self._start(release)
        else:
            processes.wait_ready(candidate.process)  # a killed canary's candidate, maybe still loading its model
        # Warmed up first, directly: a fresh server's first answers (lazy imports, first connections)
        # are slow for reasons no user would see twice, and must not decide the latency verdict.
        probe(candidate.process.url, WARM_UP_REQUESTS)
        routes = [(stable, 100 - canary.percent), (candidate, canary.percent)]
        self._route(routes)
        for other in [s for s in self.servers if s not in (stable, candidate)]:
            self._retire(other)

        def window() -> list[Problem]:
            self._route(routes)  # a new window: the router's counters start again
            assert self.url is not None
            # Enough probes through the router that the canary alone answers canary.requests of them.
            probe(self.url, math.ceil(canary.requests * 100 / canary.percent))
            windows = self._windows()
            return problems(canary, windows[stable.backend], windows[candidate.backend])

        found = [str(p) for p in settle(window)]
        decided(found)
        keep, drop = (stable, candidate) if found else (candidate, stable)
        self._route([(keep, 100)])
        self._retire(drop)
        return found

    def stop(self) -> None:
        """Stop the router and every model server of this deployment, and forget them."""
        for server in self.servers:
            processes.stop(server.process)
        if self.router is not None:
            processes.stop(self.router)

    # -- steps --------------------------------------------------------------------------------------

    def _start(self, release: Release) -> ModelServer:
        process = processes.spawn(
            SERVER,
            ["--name", self.name, "--model-uri", f"models:/{release.model}/{release.version}"],
            processes.listen(),
            state_dir=self.state_dir,
            name=f"model server {self.label} v{release.version}",
            health=f"/v2/models/{self.name}/ready",
            labels={DEPLOYMENT: self.label, ROLE: "server", "version": str(release.version), "digest": release.digest},
            env={
                "MLFLOW_TRACKING_URI": release.tracking_uri,
                # One thread per server unless told otherwise: several servers share a laptop's cores,
                # and OpenMP threads spinning in one (sklearn, xgboost) starve the others.
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            },
        )
        try:
            processes.wait_ready(process)
        except Exception:
            processes.stop(process)
            raise
        server = ModelServer(release.version, release.digest, process)
        self.servers.append(server)
        return server

    def _route(self, weights: list[tuple[ModelServer, int]]) -> None:
        self._ensure_router()
        assert self.router is not None
        backends = [{"name": s.backend, "url": s.process.url, "weight": w} for s, w in weights]
        self.admin("/-/routes", {"backends": backends})

    def _retire(self, server: ModelServer) -> None:
        """Stop ``server`` once the router has no request of it in flight."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while self.router is not None and time.monotonic() < deadline:
            stats = self.admin("/-/stats")
            busy = [b for b in (*stats["backends"], *stats["draining"]) if b["name"] == server.backend]
            if not any(b["inFlight"] for b in busy):
                break
            time.sleep(0.02)
        processes.stop(server.process)
        self.servers.remove(server)

    def _windows(self) -> dict[str, Window]:
        assert self.router is not None
        stats = self.admin("/-/stats")["backends"]
        return {b["name"]: Window(b["requests"], b["errors"], tuple(b["latenciesMs"])) for b in stats}

    def admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One admin call to this deployment's router (``/-/routes``, ``/-/stats``), with its token."""
        assert self.router is not None
        return _call(self.router.url + path, body, token=self._token_file.read_text(encoding="utf-8").strip())

    @property
    def _token_file(self) -> Path:
        return self.state_dir / "tokens" / f"router-{self.label.replace('/', '-')}.token"

    def _ensure_router(self) -> None:
        if self.router is not None and processes.alive(self.router):
            return
        if self.router is not None:
            processes.stop(self.router)  # gone already: this forgets its entry in the process table
        name = f"router {self.label}"
        # On the port it had, so the deployment's URL does not change.
        port = processes.port_for(self.state_dir, name)
        labels = {DEPLOYMENT: self.label, ROLE: "router"}
        # A new admin token for each start, readable by this user only.
        write_private(self._token_file, secrets.token_urlsafe(32))
        self.router = processes.spawn(
            ROUTER,
            ["--token-file", str(self._token_file)],
            processes.listen(port),
            state_dir=self.state_dir,
            name=name,
            health="/-/healthz",
            labels=labels,
        )
        # Its health fails until it routes somewhere; that it answers at all is what its start waits for.
        deadline = time.monotonic() + 30
        while True:
            if not processes.alive(self.router):
                raise UserError(f"the router of {self.label} exited:\n{processes.tail(self.router)}")
            try:
                _call(self.router.url + "/-/live", token="")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _routed(self) -> list[str]:
        """The URLs the router sends traffic to (weight above 0); empty when it does not answer."""
        assert self.router is not None
        try:
            backends = self.admin("/-/stats")["backends"]
        except OSError:
            return []
        return [str(b["url"]).rstrip("/") for b in backends if b["weight"] > 0]


def _call(url: str, body: dict[str, Any] | None = None, *, token: str) -> dict[str, Any]:
    """One call to a router on loopback (``token``: its admin token, for ``/-/routes`` and ``/-/stats``)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "PUT")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback only)
        result: dict[str, Any] = json.loads(answer.read())
        return result


def deployments(state_dir: Path) -> list[LocalServing]:
    """Every deployment the local target has processes of."""
    found = sorted({p.labels[DEPLOYMENT] for p in processes.table(state_dir) if DEPLOYMENT in p.labels})
    return [LocalServing(state_dir, *deployment.split("/", 1)) for deployment in found]
