"""The models plane's adapter to an MLflow model registry (local SQLite or a tracking server over REST).

Aliases are how versions are promoted (stages are deprecated). Every move records
who, when, why and the version the alias left as tags on the version it now points
at, so a rollback knows where to go back to. A local canary's passing verdict is
recorded on the candidate before anything acts on it (``record_canary``), so an apply
killed between the verdict and the alias move finishes the move after a canary.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shipyard.planes.models.gates import Candidate
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


class ModelRegistry:
    def __init__(self, tracking_uri: str, *, provenance: bool = False) -> None:
        """``provenance``: versions are candidates only if their run carries Shipyard's provenance tags."""
        from mlflow import MlflowClient  # imported here: only the models plane needs it

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.uri = tracking_uri
        self.provenance = provenance

    def alias(self, model: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None (also when the model is not registered yet)."""
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(model, alias).version)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def models(self) -> list[str]:
        """The names of every registered model."""
        return sorted(m.name for m in self.client.search_registered_models())

    def versions(self, model: str, *, rejected: bool = True) -> list[int]:
        """The versions of ``model``, newest first; without those a rollback rejected when ``rejected`` is False."""
        found = self.client.search_model_versions(f"name = '{model}'")
        kept = (v for v in found if rejected or REJECTED_TAG not in (v.tags or {}))
        return sorted((int(v.version) for v in kept), reverse=True)

    def candidate(self, model: str, version: int) -> Candidate:
        found = self.client.get_model_version(model, str(version))
        metrics: dict[str, float] = {}
        checks: frozenset[str] = frozenset()
        datasets: frozenset[str] = frozenset()
        origin: dict[str, str] = {}
        if found.run_id:
            run = self.client.get_run(found.run_id)
            origin = provenance(run.data.tags)
            metrics = dict(run.data.metrics)
            checks = frozenset(filter(None, run.data.tags.get(DATA_CHECKS_TAG, "").split(",")))
            datasets = frozenset(
                d.dataset.name
                for d in (run.inputs.dataset_inputs if run.inputs else [])
                if any(t.key == "mlflow.data.context" and t.value == "evaluation" for t in d.tags)
            )
        return Candidate(
            version, metrics, checks, datasets, dict(found.tags or {}), origin if self.provenance else None
        )

    def storage_uri(self, model: str, version: int) -> str:
        """Where the version's files are: what KServe's storage initializer downloads."""
        return str(self.client.get_model_version_download_uri(model, str(version)))

    def move(self, model: str, alias: str, version: int, why: str) -> int | None:
        """Point ``alias`` at ``version``, recording who, when, why and where it was; returns that previous version."""
        previous = self.alias(model, alias)
        self.client.set_registered_model_alias(model, alias, str(version))
        record: dict[str, Any] = {
            "by": _who(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "why": why,
            "previous": "" if previous is None else str(previous),
        }
        for what, value in record.items():
            self.client.set_model_version_tag(model, str(version), _tag(alias, what), value)
        return previous

    def previous(self, model: str, alias: str) -> int | None:
        """The version ``alias`` pointed at before its last move, from the tags that move left."""
        current = self.alias(model, alias)
        if current is None:
            return None
        tags = self.client.get_model_version(model, str(current)).tags or {}
        value = tags.get(_tag(alias, "previous"), "")
        return int(value) if value else None

    def record_canary(self, model: str, alias: str, version: int, beside: int) -> None:
        """Record that ``version`` passed a canary for ``alias`` beside ``beside``: its verdict, before the move."""
        self.client.set_model_version_tag(model, str(version), _tag(alias, "canary_passed"), str(beside))

    def reject(self, model: str, version: int, why: str) -> None:
        """Mark a version never to be promoted again automatically (a rollback does this)."""
        self.client.set_model_version_tag(model, str(version), REJECTED_TAG, why)

    def rejected(self, model: str, version: int) -> str | None:
        """Why ``version`` was rejected (a rollback, a failed canary), or None."""
        tags = self.client.get_model_version(model, str(version)).tags or {}
        return tags.get(REJECTED_TAG)

    def clear_rejection(self, model: str, version: int, why: str) -> None:
        """Make a rejected version a candidate again, recording who, when, why, and the rejection it clears."""
        was = self.rejected(model, version)
        if was is None:
            return
        record = f"{why} (by {_who()} at {datetime.now(UTC).isoformat(timespec='seconds')}; it was rejected: {was})"
        self.client.set_model_version_tag(model, str(version), CLEARED_TAG, record)
        self.client.delete_model_version_tag(model, str(version), REJECTED_TAG)


def _who() -> str:
    actor = os.environ.get("GITHUB_ACTOR")  # in CI, the person whose merge is being applied
    if actor:
        return f"{actor} (GitHub Actions run {os.environ.get('GITHUB_RUN_ID', '?')})"
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
