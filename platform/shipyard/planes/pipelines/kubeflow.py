"""The pipelines plane's adapter to a Kubeflow Pipelines API server, through ``kfp.Client``.

Everything the plane does on a cloud target goes through this one class, so
what needs a cluster is small and in one place. Conventions it keeps on the server:

- one pipeline per spec, named ``<team>-<name>``, in the team's namespace, its
  description starting with ``MANAGED`` so removed specs can be found and deleted;
- versions named by a digest of their content, the newest being the current one
  (re-applying an older content moves its version to the top again);
- at most one recurring run per pipeline, with the same name, pointing at the
  current version. KFP cannot change a recurring run in place, so a changed one
  is deleted and created again.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shipyard.sdk.errors import TargetUnavailable, api_failure

MANAGED = "managed-by: shipyard"
TOKEN_VARIABLE = "SHIPYARD_KFP_TOKEN"  # noqa: S105 - the variable's name, not a token
_PAGE = 100


@dataclass(frozen=True)
class Schedule:
    cron: str  # five fields, as the spec writes it
    paused: bool
    experiment: str
    arguments: dict[str, Any]
    pipeline_root: str | None


@dataclass(frozen=True)
class Deployed:
    """A managed pipeline as the server has it: the current version and its recurring run."""

    name: str
    version: str
    metadata: dict[str, Any]  # what the version's description carries
    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any]
    schedule: dict[str, Any] | None  # {cron, paused}


def _equals(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "string_value": value}]})


class KubeflowPipelines:
    """Reads and writes managed pipelines on one Kubeflow Pipelines server."""

    def __init__(self, host: str) -> None:
        import kfp  # imported here: only a cloud target needs it
        import kfp_server_api

        self._api = kfp_server_api
        with warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
            try:
                self.client = kfp.Client(host=host, existing_token=os.environ.get(TOKEN_VARIABLE))
            except Exception as error:  # the constructor asks healthz: any failure means no server
                raise TargetUnavailable(
                    f"Kubeflow Pipelines at {host} did not answer: {error}",
                    hint=f"check the environment's kubeflow.host and the token in ${TOKEN_VARIABLE}",
                ) from error

    # -- reading ----------------------------------------------------------------------------------

    def deployed(self, namespace: str) -> list[Deployed]:
        """Every managed pipeline in ``namespace``."""
        with self._calls():
            found = []
            for pipeline in self._pipelines(namespace):
                versions = self._versions(pipeline.pipeline_id)
                if not versions:
                    continue
                current = self.client.get_pipeline_version(pipeline.pipeline_id, versions[0].pipeline_version_id)
                spec, platform = _split(current.pipeline_spec or {})
                runs = self._recurring_runs(namespace, pipeline.display_name)
                found.append(
                    Deployed(
                        name=pipeline.display_name,
                        version=current.display_name,
                        metadata=_metadata(current.description),
                        pipeline_spec=spec,
                        platform_spec=platform,
                        schedule=_schedule(runs[0]) if runs else None,
                    )
                )
            return found

    def _pipelines(self, namespace: str) -> list[Any]:
        out: list[Any] = []
        token = ""
        while True:
            page = self.client.list_pipelines(page_token=token, page_size=_PAGE, namespace=namespace)
            out += [p for p in page.pipelines or [] if (p.description or "").startswith(MANAGED)]
            token = page.next_page_token or ""
            if not token:
                return out

    def _versions(self, pipeline_id: str) -> list[Any]:
        """All versions, newest first."""
        out: list[Any] = []
        token = ""
        while True:
            page = self.client.list_pipeline_versions(
                pipeline_id, page_token=token, page_size=_PAGE, sort_by="created_at desc"
            )
            out += page.pipeline_versions or []
            token = page.next_page_token or ""
            if not token:
                return out

    def _recurring_runs(self, namespace: str, name: str) -> list[Any]:
        page = self.client.list_recurring_runs(
            page_size=_PAGE, namespace=namespace, filter=_equals("display_name", name)
        )
        return list(page.recurring_runs or [])

    # -- writing ----------------------------------------------------------------------------------

    def publish(
        self, namespace: str, name: str, ir: str, version: str, metadata: dict[str, Any], schedule: Schedule | None
    ) -> None:
        """Make ``version`` of pipeline ``name`` current and its recurring run match ``schedule``. Idempotent."""
        with self._calls():
            pipeline_id = self._pipeline_id(namespace, name)
            version_id = self._current_version(pipeline_id, ir, version, metadata)
            for run in self._recurring_runs(namespace, name):
                self.client.delete_recurring_run(run.recurring_run_id)
            if schedule is not None:
                experiment = self.client.create_experiment(schedule.experiment, namespace=namespace)  # get or create
                self.client.create_recurring_run(
                    experiment_id=experiment.experiment_id,
                    job_name=name,
                    description=MANAGED,
                    cron_expression=f"0 {schedule.cron}",  # KFP's cron has a seconds field first
                    no_catchup=True,
                    params=schedule.arguments,
                    pipeline_id=pipeline_id,
                    version_id=version_id,
                    enabled=not schedule.paused,
                    pipeline_root=schedule.pipeline_root,
                )

    def remove(self, namespace: str, name: str) -> None:
        """Delete the pipeline, its versions and its recurring run. Idempotent."""
        with self._calls():
            for run in self._recurring_runs(namespace, name):
                self.client.delete_recurring_run(run.recurring_run_id)
            for pipeline in self._pipelines_named(namespace, name):
                self._delete_pipeline(pipeline.pipeline_id)

    def _delete_pipeline(self, pipeline_id: str) -> None:
        for existing in self._versions(pipeline_id):  # KFP refuses to delete a pipeline with versions
            self.client.delete_pipeline_version(pipeline_id, existing.pipeline_version_id)
        self.client.delete_pipeline(pipeline_id)

    def _pipeline_id(self, namespace: str, name: str) -> str:
        existing = self._pipelines_named(namespace, name)
        if existing:
            return str(existing[0].pipeline_id)
        body = self._api.V2beta1Pipeline(display_name=name, description=MANAGED, namespace=namespace)
        created = self.client._pipelines_api.pipeline_service_create_pipeline(pipeline=body)  # no wrapper in kfp.Client
        return str(created.pipeline_id)

    def _pipelines_named(self, namespace: str, name: str) -> list[Any]:
        page = self.client.list_pipelines(page_size=_PAGE, namespace=namespace, filter=_equals("display_name", name))
        return list(page.pipelines or [])

    def _current_version(self, pipeline_id: str, ir: str, version: str, metadata: dict[str, Any]) -> str:
        versions = self._versions(pipeline_id)
        if versions and versions[0].display_name == version:
            return str(versions[0].pipeline_version_id)
        for old in versions:
            if old.display_name == version:  # content seen before: upload it again so it is the newest
                self.client.delete_pipeline_version(pipeline_id, old.pipeline_version_id)
        with tempfile.TemporaryDirectory(prefix="shipyard-kfp-") as folder:
            package = os.path.join(folder, "pipeline.yaml")
            with open(package, "w", encoding="utf-8") as handle:
                handle.write(ir)
            uploaded = self.client.upload_pipeline_version(
                package, version, pipeline_id=pipeline_id, description=f"{MANAGED}\n{json.dumps(metadata)}"
            )
        return str(uploaded.pipeline_version_id)

    @contextlib.contextmanager
    def _calls(self) -> Iterator[None]:
        """kfp.Client prints links on stdout; server errors become Shipyard errors."""
        try:
            with _quiet():
                yield
        except self._api.ApiException as error:
            rights = f"check the token in ${TOKEN_VARIABLE} and its rights in the team namespace"
            hints = {401: rights, 403: rights}
            status, reason, body = error.status or 0, error.reason, error.body or ""
            raise api_failure("Kubeflow Pipelines", status, reason, body, hints) from error


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _split(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    # The API returns a version with a platform spec (kfp-kubernetes settings) as
    # {"pipeline_spec": ..., "platform_spec": ...}, and one without as the pipeline spec itself.
    if "pipeline_spec" in spec:
        return spec["pipeline_spec"], spec.get("platform_spec") or {}
    return spec, {}


def _metadata(description: str | None) -> dict[str, Any]:
    _, _, payload = (description or "").partition("\n")
    try:
        found = json.loads(payload)
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def _schedule(run: Any) -> dict[str, Any]:
    cron = run.trigger.cron_schedule.cron if run.trigger and run.trigger.cron_schedule else ""
    return {"cron": cron.removeprefix("0 "), "paused": run.mode == "DISABLE"}
