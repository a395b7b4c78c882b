"""A Kubeflow Pipelines v2beta1 API server on 127.0.0.1, in memory, for the adapter's tests.

It answers the REST calls ``kfp.Client`` makes for pipelines, versions, experiments
and recurring runs, with the JSON shapes of the real API server (snake_case fields,
``next_page_token`` paging, ``EQUALS`` filters on ``display_name``, multipart
uploads, a version with a platform spec returned as ``{pipeline_spec, platform_spec}``).
It also refuses what the real server refuses and the adapter must respect:
duplicate names, and deleting a pipeline that still has versions.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

from servers.loopback import serving

PREFIX = "/apis/v2beta1"


@dataclass
class State:
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    clock: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids):04d}"

    def stamp(self) -> str:
        # strictly increasing, so "created_at desc" orders like the real server
        return f"2026-01-01T00:00:{next(self.clock):02d}Z"


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _filtered(items: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    for text in query.get("filter", []):
        for predicate in json.loads(text).get("predicates", []):
            if predicate.get("operation") not in ("EQUALS", 1):  # the enum by name or by number, as protobuf JSON
                raise _ApiError(400, f"unsupported filter operation {predicate.get('operation')}")
            value = predicate.get("string_value", predicate.get("stringValue"))
            items = [i for i in items if i.get(predicate["key"]) == value]
    return items


def _page(items: list[dict[str, Any]], query: dict[str, list[str]], field_name: str) -> dict[str, Any]:
    sort = (query.get("sort_by") or [""])[0]
    if sort:
        key, _, order = sort.partition(" ")
        items = sorted(items, key=lambda i: i.get(key, ""), reverse=order == "desc")
    size = int((query.get("page_size") or ["10"])[0])
    start = int((query.get("page_token") or ["0"])[0] or 0)
    page = items[start : start + size]
    body: dict[str, Any] = {"total_size": len(items)}
    if page:
        body[field_name] = page
    if start + size < len(items):
        body["next_page_token"] = str(start + size)
    return body


class _Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        self.state.calls.append(f"{method} {url.path}")
        try:
            status, body = self._handle(method, url.path.removeprefix(PREFIX).strip("/").split("/"), query)
        except _ApiError as error:
            status, body = error.status, {"code": error.status, "message": str(error)}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length", 0))
        return json.loads(self.rfile.read(length) or b"{}")

    def _upload(self) -> str:
        length = int(self.headers.get("Content-Length", 0))
        raw = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + self.rfile.read(length)
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                return part.get_payload(decode=True).decode()
        raise _ApiError(400, "uploadfile is missing")

    def _handle(self, method: str, parts: list[str], query: dict[str, list[str]]) -> tuple[int, Any]:
        s = self.state
        match method, parts:
            case "GET", ["healthz"]:
                return 200, {"multi_user": True}
            case "GET", ["pipelines"]:
                items = [p for p in s.pipelines.values() if p["namespace"] == (query.get("namespace") or [""])[0]]
                return 200, _page(_filtered(items, query), query, "pipelines")
            case "POST", ["pipelines"]:
                body = self._json()
                if any(
                    p["display_name"] == body["display_name"] and p["namespace"] == body.get("namespace", "")
                    for p in s.pipelines.values()
                ):
                    raise _ApiError(409, f"pipeline {body['display_name']} already exists")
                pipeline = {
                    "pipeline_id": s.new_id("pipeline"),
                    "display_name": body["display_name"],
                    "description": body.get("description", ""),
                    "namespace": body.get("namespace", ""),
                    "created_at": s.stamp(),
                }
                s.pipelines[pipeline["pipeline_id"]] = pipeline
                return 200, pipeline
            case "GET", ["pipelines", pipeline_id]:
                return 200, self._pipeline(pipeline_id)
            case "DELETE", ["pipelines", pipeline_id]:
                self._pipeline(pipeline_id)
                if any(v["pipeline_id"] == pipeline_id for v in s.versions.values()):
                    raise _ApiError(400, "pipeline has existing versions; delete them first")
                del s.pipelines[pipeline_id]
                return 200, {}
            case "GET", ["pipelines", pipeline_id, "versions"]:
                self._pipeline(pipeline_id)
                items = [self._public(v) for v in s.versions.values() if v["pipeline_id"] == pipeline_id]
                return 200, _page(_filtered(items, query), query, "pipeline_versions")
            case "GET", ["pipelines", pipeline_id, "versions", version_id]:
                return 200, self._public(self._version(pipeline_id, version_id), with_spec=True)
            case "DELETE", ["pipelines", pipeline_id, "versions", version_id]:
                self._version(pipeline_id, version_id)
                del s.versions[version_id]
                return 200, {}
            case "POST", ["pipelines", "upload_version"]:
                pipeline_id = (query.get("pipelineid") or [""])[0]
                name = (query.get("name") or [""])[0]
                self._pipeline(pipeline_id)
                if any(v["pipeline_id"] == pipeline_id and v["display_name"] == name for v in s.versions.values()):
                    raise _ApiError(409, f"version {name} already exists")
                docs = [d for d in yaml.safe_load_all(self._upload()) if d]
                spec = docs[0] if len(docs) == 1 else {"pipeline_spec": docs[0], "platform_spec": docs[1]}
                version = {
                    "pipeline_id": pipeline_id,
                    "pipeline_version_id": s.new_id("version"),
                    "display_name": name,
                    "description": (query.get("description") or [""])[0],
                    "created_at": s.stamp(),
                    "pipeline_spec": spec,
                }
                s.versions[version["pipeline_version_id"]] = version
                return 200, version
            case "GET", ["experiments"]:
                items = [e for e in s.experiments.values() if e["namespace"] == (query.get("namespace") or [""])[0]]
                return 200, _page(_filtered(items, query), query, "experiments")
            case "POST", ["experiments"]:
                body = self._json()
                experiment = {
                    "experiment_id": s.new_id("experiment"),
                    "display_name": body["display_name"],
                    "namespace": body.get("namespace", ""),
                    "storage_state": "AVAILABLE",
                    "created_at": s.stamp(),
                }
                s.experiments[experiment["experiment_id"]] = experiment
                return 200, experiment
            case "GET", ["recurringruns"]:
                namespace = (query.get("namespace") or [""])[0]
                items = [r for r in s.recurring_runs.values() if r["namespace"] == namespace]
                return 200, _page(_filtered(items, query), query, "recurringRuns")
            case "POST", ["recurringruns"]:
                body = self._json()
                experiment = s.experiments.get(body.get("experiment_id", ""))
                if experiment is None:
                    raise _ApiError(400, "experiment_id does not name an experiment")
                reference = body.get("pipeline_version_reference") or {}
                self._version(reference.get("pipeline_id", ""), reference.get("pipeline_version_id", ""))
                run = body | {
                    "recurring_run_id": s.new_id("recurring"),
                    "namespace": experiment["namespace"],
                    "created_at": s.stamp(),
                    "status": "ENABLED" if body.get("mode") == "ENABLE" else "DISABLED",
                }
                s.recurring_runs[run["recurring_run_id"]] = run
                return 200, {k: v for k, v in run.items() if k != "namespace"}
            case "DELETE", ["recurringruns", run_id]:
                if s.recurring_runs.pop(run_id, None) is None:
                    raise _ApiError(404, f"recurring run {run_id} not found")
                return 200, {}
        raise _ApiError(404, f"no route for {method} /{'/'.join(parts)}")

    def _pipeline(self, pipeline_id: str) -> dict[str, Any]:
        if pipeline_id not in self.state.pipelines:
            raise _ApiError(404, f"pipeline {pipeline_id} not found")
        return self.state.pipelines[pipeline_id]

    def _version(self, pipeline_id: str, version_id: str) -> dict[str, Any]:
        version = self.state.versions.get(version_id)
        if version is None or version["pipeline_id"] != pipeline_id:
            raise _ApiError(404, f"pipeline version {version_id} not found")
        return version

    @staticmethod
    def _public(version: dict[str, Any], with_spec: bool = False) -> dict[str, Any]:
        return version if with_spec else {k: v for k, v in version.items() if k != "pipeline_spec"}


@contextmanager
def kubeflow_api() -> Iterator[tuple[str, State]]:
    """A server on a free loopback port: yields its URL and its state."""
    state = State()
    with serving(_Handler, state) as url:
        yield url, state
