"""An MLflow tracking server's model registry over its REST API (``/api/2.0/mlflow/...``), with the standard library.

Why not ``MlflowClient``: importing ``mlflow`` takes seconds, and its first call to a server
loads every installed ``mlflow.request_header_provider`` entry point; Feast registers one, so
a single registry read imported all of Feast into the engine (about 8 s of a 10 s ``pin`` on
2 cores). A plan reads a few small JSON documents: a version's tags, its run's metrics.

Credentials are MLflow's own variables, read the way its client reads them:
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (basic) or ``MLFLOW_TRACKING_TOKEN``
(bearer); ``MLFLOW_TRACKING_SERVER_CERT_PATH``, ``MLFLOW_TRACKING_CLIENT_CERT_PATH`` and
``MLFLOW_TRACKING_INSECURE_TLS`` for TLS. A server behind an auth plugin
(``MLFLOW_TRACKING_AUTH``) is read through ``MlflowClient`` instead (``registry.py``).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.sdk.errors import ShipyardError, TargetUnavailable, TransientError, UserError, api_failure

#: Error codes MLflow answers for a name, version or run that does not exist; for an alias, it answers
#: ``INVALID_PARAMETER_VALUE`` when the model exists and the alias does not.
NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
ALIAS_NOT_FOUND = NOT_FOUND | {"INVALID_PARAMETER_VALUE"}
#: A page of search results: the most the server returns at once for registered models.
PAGE = 1000
TIMEOUT_S = 30.0
#: Reads are retried on 5xx/429 (a server restarting, a proxy shedding load), as MLflow's client does.
RETRIES = 3


@dataclass(frozen=True)
class Version:
    """A registered model version as Shipyard reads it."""

    version: int
    run_id: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """The facts of a training run the gates read: its metrics (the latest value of each), tags and evaluation sets."""

    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    evaluation_datasets: frozenset[str]


class RestStore:
    """Reads (and the few tag and alias writes promotion makes) of one tracking server's registry."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        self.headers = _headers()
        self.tls = _tls() if self.uri.startswith("https://") else None

    # -- reads ------------------------------------------------------------------------------------

    def models(self) -> list[str]:
        return [m["name"] for m in self._pages("registered-models/search", "registered_models", {})]

    def versions(self, model: str) -> list[Version]:
        query = {"filter": f"name = '{model}'"}
        return [_version(v) for v in self._pages("model-versions/search", "model_versions", query)]

    def version(self, model: str, version: int) -> Version:
        found = self._get("model-versions/get", {"name": model, "version": str(version)})
        return _version(found["model_version"])

    def alias(self, model: str, alias: str) -> int | None:
        """The version ``alias`` points at; None when the alias, or the model, does not exist."""
        found = self._get("registered-models/alias", {"name": model, "alias": alias}, absent=ALIAS_NOT_FOUND)
        return int(found["model_version"]["version"]) if found else None

    def run(self, run_id: str) -> Run:
        run = self._get("runs/get", {"run_id": run_id})["run"]
        data, inputs = run.get("data", {}), run.get("inputs", {})
        evaluation = frozenset(
            d["dataset"]["name"]
            for d in inputs.get("dataset_inputs", [])
            if _pairs(d.get("tags")).get("mlflow.data.context") == "evaluation"
        )
        # float(): the server writes NaN and infinities as the strings "NaN" and "Infinity".
        metrics = {m["key"]: float(m.get("value", 0.0)) for m in data.get("metrics", [])}
        return Run(metrics, _pairs(data.get("tags")), evaluation)

    def download_uri(self, model: str, version: int) -> str:
        found = self._get("model-versions/get-download-uri", {"name": model, "version": str(version)})
        return str(found["artifact_uri"])

    # -- writes -----------------------------------------------------------------------------------

    def set_alias(self, model: str, alias: str, version: int) -> None:
        self._call("POST", "registered-models/alias", {"name": model, "alias": alias, "version": str(version)})

    def set_tag(self, model: str, version: int, key: str, value: str) -> None:
        body = {"name": model, "version": str(version), "key": key, "value": value}
        self._call("POST", "model-versions/set-tag", body)

    def delete_tag(self, model: str, version: int, key: str) -> None:
        self._call("DELETE", "model-versions/delete-tag", {"name": model, "version": str(version), "key": key})

    # -- the protocol -----------------------------------------------------------------------------

    def _pages(self, endpoint: str, items: str, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every result of a search, following ``next_page_token`` to the last page."""
        token = ""
        while True:
            page = self._get(endpoint, query | {"max_results": str(PAGE)} | ({"page_token": token} if token else {}))
            yield from page.get(items, [])
            token = page.get("next_page_token", "")
            if not token:
                return

    def _get(self, endpoint: str, query: dict[str, str], *, absent: frozenset[str] = frozenset()) -> dict[str, Any]:
        """A read, retried on 5xx and 429; empty when MLflow answers one of the error codes in ``absent``."""
        for attempt in range(RETRIES):
            try:
                return self._call("GET", endpoint, query, absent)
            except TransientError:
                if attempt == RETRIES - 1:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def _call(
        self, method: str, endpoint: str, params: dict[str, str], absent: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        url = f"{self.uri}/api/2.0/mlflow/{endpoint}"
        data = None
        if method == "GET":
            url += "?" + urllib.parse.urlencode(params)
        else:
            data = json.dumps(params).encode()
        request = urllib.request.Request(url, data, self.headers, method=method)  # noqa: S310 (http(s) only)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=self.tls) as answer:  # noqa: S310
                found: dict[str, Any] = json.loads(answer.read() or b"{}")
                return found
        except urllib.error.HTTPError as error:
            code, message = _error(error)
            if code in absent:
                return {}
            raise self._failure(method, endpoint, params, error, code, message) from error
        except OSError as error:  # refused, reset, timed out, TLS
            raise TargetUnavailable(
                f"the MLflow tracking server at {self.uri} did not answer: {getattr(error, 'reason', error)}",
                hint="check that it runs (locally: shipyard up) and the network path to it",
            ) from error
        except ValueError as error:  # a proxy's login page, say
            raise TargetUnavailable(
                f"{url} answered something other than JSON: {error}",
                hint=f"is {self.uri} an MLflow tracking server?",
            ) from error

    def _failure(
        self, method: str, endpoint: str, params: dict[str, str], error: urllib.error.HTTPError, code: str, message: str
    ) -> ShipyardError:
        if code in NOT_FOUND:
            asked = ", ".join(f"{k} {v}" for k, v in params.items() if k in ("name", "version", "run_id"))
            return UserError(
                f"MLflow at {self.uri} has no {asked}: {message}",
                hint="it was deleted, or the spec names something else; plan again",
            )
        credentials = "set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        hints = {
            401: credentials,
            403: f"the identity applying needs read and write access to the registry ({credentials})",
            404: f"is {self.uri} an MLflow tracking server?",
        }
        return api_failure(f"MLflow at {self.uri} ({method} {endpoint})", error.code, error.reason, message, hints)


def _error(error: urllib.error.HTTPError) -> tuple[str, str]:
    """MLflow's error answer, ``{"error_code": ..., "message": ...}``: its code and message."""
    body = error.read().decode("utf-8", "replace")
    try:
        found = json.loads(body)
        return str(found.get("error_code", "")), str(found.get("message", body))
    except (ValueError, AttributeError):
        return "", body


def _version(found: dict[str, Any]) -> Version:
    return Version(int(found["version"]), found.get("run_id") or "", _pairs(found.get("tags")))


def _pairs(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """MLflow's ``[{"key": ..., "value": ...}]`` as a dict (a tag without a value is the empty string)."""
    return {t["key"]: t.get("value", "") for t in tags or []}


def _headers() -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if user and password:  # MLflow's client prefers these to a token, too
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    client = os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH")
    if client:
        context.load_cert_chain(client)
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
