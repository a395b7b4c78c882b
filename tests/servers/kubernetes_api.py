"""A Kubernetes API server on 127.0.0.1 answering the calls the models plane makes (InferenceServices, HTTPRoutes).

In memory, for the adapter's tests. Like the real API server it:
- wants a bearer token (401 without);
- takes server-side apply only as ``PATCH`` with ``application/apply-patch+yaml`` and a
  ``fieldManager`` (415 / 400 otherwise), records the manager's fields in
  ``metadata.managedFields``, and keeps fields other managers own;
- plays KServe too: its webhook defaults a field (owned by ``kserve-webhook``), and its
  controller writes ``status`` (Ready, URL, traffic) and server-set metadata;
- filters lists by ``labelSelector`` (``k=v`` pairs) and answers 404 for what is not there.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

from servers.loopback import serving

TOKEN = "shipyard-test-token"
PATH = re.compile(
    r"^/apis/(?:serving\.kserve\.io/v1beta1|gateway\.networking\.k8s\.io/v1)(?:/namespaces/(?P<ns>[^/]+))?"
    r"/(?P<plural>inferenceservices|httproutes)(?:/(?P<name>[^/]+))?$"
)


@dataclass
class State:
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # (plural, namespace, name)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path with query, content type)
    versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))


def _fields(value: Any) -> dict[str, Any]:
    """The fieldsV1 set of an applied object: every key, lists as a whole."""
    if not isinstance(value, dict):
        return {}
    return {f"f:{k}": _fields(v) for k, v in value.items()}


def _defaulted(applied: dict[str, Any], state: State, previous: dict[str, Any] | None) -> dict[str, Any]:
    """What the server stores: the applied fields, server-set metadata, and for an InferenceService
    KServe's default and status."""
    stored = json.loads(json.dumps(applied))
    meta = stored["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    generation = (previous or {}).get("metadata", {}).get("generation", 0) + 1
    meta |= {
        "uid": (previous or {}).get("metadata", {}).get("uid", f"uid-{name}"),
        "resourceVersion": str(next(state.versions)),
        "generation": generation,
        "creationTimestamp": "2026-11-24T00:00:00Z",
        "managedFields": [
            {"manager": "shipyard", "operation": "Apply", "fieldsV1": _fields(applied)},
            {"manager": "kserve-webhook", "operation": "Update", "fieldsV1": {"f:spec": {"f:predictor": {}}}},
        ],
    }
    if stored["kind"] != "InferenceService":
        return stored
    model = stored["spec"]["predictor"].setdefault("model", {})
    model.setdefault("runtime", f"kserve-{model.get('modelFormat', {}).get('name', 'custom')}server")
    stored["status"] = {
        "url": f"http://{name}.{namespace}.svc.cluster.local",
        "conditions": [{"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {"traffic": [{"revisionName": f"{name}-predictor-{generation:05d}", "percent": 100}]}
        },
    }
    return stored


class _Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, message: str) -> None:
        failure = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
        self._answer(code, failure)

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.state.calls.append((method, self.path, self.headers.get("Content-Type", "")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._status(401, "Unauthorized")
            return
        found = PATH.match(url.path)
        if found is None:
            self._status(404, f"the server could not find the requested resource ({url.path})")
            return
        plural, namespace, name = found["plural"], found["ns"], found["name"]
        objects = self.state.objects
        if method == "GET" and name is None:
            wanted = dict(p.split("=", 1) for p in query.get("labelSelector", [""])[0].split(",") if p)
            items = [
                o
                for (kind, ns, _), o in sorted(objects.items())
                if kind == plural
                and (namespace is None or ns == namespace)
                and all(o["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
            ]
            listed = {"kind": "List", "items": items}
            self._answer(200, listed)
        elif method == "PATCH" and name is not None:
            if self.headers.get("Content-Type") != "application/apply-patch+yaml":
                given = self.headers.get("Content-Type")
                self._status(415, f"this test server takes server-side apply only, not {given}")
                return
            if "fieldManager" not in query:
                self._status(400, "fieldManager is required for apply requests")
                return
            applied = yaml.safe_load(body)
            if (applied["metadata"]["namespace"], applied["metadata"]["name"]) != (namespace, name):
                self._status(400, "the body's name and namespace do not match the path")
                return
            stored = _defaulted(applied, self.state, objects.get((plural, namespace, name)))
            objects[(plural, namespace, name)] = stored
            self._answer(200, stored)
        elif method == "DELETE" and name is not None:
            if objects.pop((plural, namespace, name), None) is None:
                self._status(404, f'{plural} "{name}" not found')
                return
            self._answer(200, {"kind": "Status", "status": "Success"})
        else:
            self._status(405, f"{method} {url.path} is not served here")

    def do_GET(self) -> None:
        self._route("GET")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")


@contextmanager
def kubernetes_api() -> Iterator[tuple[str, State]]:
    """A server on a free loopback port: yields its URL and its state."""
    state = State()
    with serving(_Handler, state) as url:
        yield url, state


def kubeconfig(url: str, context: str) -> str:
    """A kubeconfig with one context reaching ``url`` with the test token."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "loopback", "cluster": {"server": url}}],
            "users": [{"name": "ci", "user": {"token": TOKEN}}],
            "contexts": [{"name": context, "context": {"cluster": "loopback", "user": "ci"}}],
            "current-context": context,
        }
    )
