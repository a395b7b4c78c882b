"""The models plane's adapter to an MLflow model registry: a tracking server over REST, or a local SQLite file.

A server is read and written through its REST API (``registry_rest.py``), without importing
``mlflow``: a plan that reads a few versions' facts takes milliseconds, not the seconds that
importing MLflow (and, through its plugins, Feast) took. A SQLite registry, where no server
runs, is MLflow's own format, so it is read through ``MlflowClient``.

Aliases are how versions are promoted (stages are deprecated). Every move records
who, when, why and the version the alias left as tags on the version it now points
at, so a rollback knows where to go back to. A local canary's passing verdict is
recorded on the candidate before anything acts on it (``record_canary``), so an apply
killed between the verdict and the alias move finishes the move after a canary.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from shipyard.planes.models.gates import Candidate
from shipyard.planes.models.registry_rest import ALIAS_NOT_FOUND, RestStore, Run, Version
from shipyard.sdk.provenance import provenance

TAG = "shipyard"
DATA_CHECKS_TAG = f"{TAG}.data_checks"  # the training pipeline's gate records what it passed
REJECTED_TAG = f"{TAG}.rejected"
CLEARED_TAG = f"{TAG}.rejection_cleared"  # set when `promote --version` makes a rejected version a candidate again


def _tag(alias: str, what: str) -> str:
    return f"{TAG}.{alias}.{what}"


def moved_here_by_shipyard(tags: Mapping[str, str], alias: str) -> bool:
    """Whether these version tags record Shipyard moving ``alias`` to the version (not a hand move)."""
    return _tag(alias, "at") in tags


def canary_passed(tags: Mapping[str, str], alias: str) -> int | None:
    """The version this one passed a canary for ``alias`` beside (it may replace that one), from its tags."""
    value = tags.get(_tag(alias, "canary_passed"), "")
    return int(value) if value.isdigit() else None


class Store(Protocol):
    """Where a registry's records are read and written: a tracking server's REST API, or MLflow's own stores."""

    def models(self) -> list[str]: ...
    def versions(self, model: str) -> list[Version]: ...
    def version(self, model: str, version: int) -> Version: ...
    def alias(self, model: str, alias: str) -> int | None: ...
    def run(self, run_id: str) -> Run: ...
    def download_uri(self, model: str, version: int) -> str: ...
    def set_alias(self, model: str, alias: str, version: int) -> None: ...
    def set_tag(self, model: str, version: int, key: str, value: str) -> None: ...
    def delete_tag(self, model: str, version: int, key: str) -> None: ...


class ClientStore:
    """The registry through ``MlflowClient``: a SQLite file (no server runs), or a server behind an auth plugin."""

    def __init__(self, uri: str) -> None:
        from mlflow import MlflowClient  # imported here: it takes seconds, and a server is read over REST

        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def models(self) -> list[str]:
        return [m.name for m in _every(self.client.search_registered_models)]

    def versions(self, model: str) -> list[Version]:
        found = _every(lambda **page: self.client.search_model_versions(f"name = '{model}'", **page))
        return [_version(v) for v in found]

    def version(self, model: str, version: int) -> Version:
        return _version(self.client.get_model_version(model, str(version)))

    def alias(self, model: str, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(model, alias).version)
        except MlflowException as error:
            if error.error_code in ALIAS_NOT_FOUND:
                return None
            raise

    def run(self, run_id: str) -> Run:
        run = self.client.get_run(run_id)
        evaluation = frozenset(
            d.dataset.name
            for d in (run.inputs.dataset_inputs if run.inputs else [])
            if any(t.key == "mlflow.data.context" and t.value == "evaluation" for t in d.tags)
        )
        return Run(dict(run.data.metrics), dict(run.data.tags), evaluation)

    def download_uri(self, model: str, version: int) -> str:
        return str(self.client.get_model_version_download_uri(model, str(version)))

    def set_alias(self, model: str, alias: str, version: int) -> None:
        self.client.set_registered_model_alias(model, alias, str(version))

    def set_tag(self, model: str, version: int, key: str, value: str) -> None:
        self.client.set_model_version_tag(model, str(version), key, value)

    def delete_tag(self, model: str, version: int, key: str) -> None:
        self.client.delete_model_version_tag(model, str(version), key)


def _every(search: Callable[..., Any]) -> list[Any]:
    """Every page of one of MlflowClient's searches."""
    found, token = [], None
    while True:
        page = search(page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def _version(found: Any) -> Version:
    return Version(int(found.version), found.run_id or "", dict(found.tags or {}))


def store(uri: str) -> Store:
    """REST for a tracking server; MLflow's client for its file stores, and for an auth plugin only it can load."""
    if uri.startswith(("http://", "https://")) and not os.environ.get("MLFLOW_TRACKING_AUTH"):
        return RestStore(uri)
    return ClientStore(uri)


class ModelRegistry:
    def __init__(self, tracking_uri: str, *, provenance: bool = False) -> None:
        """``provenance``: versions are candidates only if their run carries Shipyard's provenance tags."""
        self.store = store(tracking_uri)
        self.uri = tracking_uri
        self.provenance = provenance

    def alias(self, model: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None (also when the model is not registered yet)."""
        return self.store.alias(model, alias)

    def models(self) -> list[str]:
        """The names of every registered model."""
        return sorted(self.store.models())

    def versions(self, model: str, *, rejected: bool = True) -> list[int]:
        """The versions of ``model``, newest first; without those a rollback rejected when ``rejected`` is False."""
        kept = (v for v in self.store.versions(model) if rejected or REJECTED_TAG not in v.tags)
        return sorted((v.version for v in kept), reverse=True)

    def candidate(self, model: str, version: int) -> Candidate:
        found = self.store.version(model, version)
        run = self.store.run(found.run_id) if found.run_id else Run({}, {}, frozenset())
        checks = frozenset(filter(None, run.tags.get(DATA_CHECKS_TAG, "").split(",")))
        origin = provenance(run.tags) if self.provenance else None
        return Candidate(version, dict(run.metrics), checks, run.evaluation_datasets, dict(found.tags), origin)

    def storage_uri(self, model: str, version: int) -> str:
        """Where the version's files are: what KServe's storage initializer downloads."""
        return self.store.download_uri(model, version)

    def move(self, model: str, alias: str, version: int, why: str) -> int | None:
        """Point ``alias`` at ``version``, recording who, when, why and where it was; returns that previous version."""
        previous = self.alias(model, alias)
        self.store.set_alias(model, alias, version)
        record: dict[str, Any] = {
            "by": _who(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "why": why,
            "previous": "" if previous is None else str(previous),
        }
        for what, value in record.items():
            self.store.set_tag(model, version, _tag(alias, what), value)
        return previous

    def previous(self, model: str, alias: str) -> int | None:
        """The version ``alias`` pointed at before its last move, from the tags that move left."""
        current = self.alias(model, alias)
        if current is None:
            return None
        value = self.store.version(model, current).tags.get(_tag(alias, "previous"), "")
        return int(value) if value else None

    def record_canary(self, model: str, alias: str, version: int, beside: int) -> None:
        """Record that ``version`` passed a canary for ``alias`` beside ``beside``: its verdict, before the move."""
        self.store.set_tag(model, version, _tag(alias, "canary_passed"), str(beside))

    def reject(self, model: str, version: int, why: str) -> None:
        """Mark a version never to be promoted again automatically (a rollback does this)."""
        self.store.set_tag(model, version, REJECTED_TAG, why)

    def rejected(self, model: str, version: int) -> str | None:
        """Why ``version`` was rejected (a rollback, a failed canary), or None."""
        return self.store.version(model, version).tags.get(REJECTED_TAG)

    def clear_rejection(self, model: str, version: int, why: str) -> None:
        """Make a rejected version a candidate again, recording who, when, why, and the rejection it clears."""
        was = self.rejected(model, version)
        if was is None:
            return
        record = f"{why} (by {_who()} at {datetime.now(UTC).isoformat(timespec='seconds')}; it was rejected: {was})"
        self.store.set_tag(model, version, CLEARED_TAG, record)
        self.store.delete_tag(model, version, REJECTED_TAG)


def _who() -> str:
    actor = os.environ.get("GITHUB_ACTOR")  # in CI, the person whose merge is being applied
    if actor:
        return f"{actor} (GitHub Actions run {os.environ.get('GITHUB_RUN_ID', '?')})"
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
