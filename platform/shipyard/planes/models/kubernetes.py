"""The models plane's adapter to a cluster: KServe InferenceServices by server-side apply, and their status.

Server-side apply (``PATCH`` with ``application/apply-patch+yaml``, field manager
``shipyard``) lets the API server merge what we declare with what others own: KServe's
webhooks add defaults, the controller writes ``status``. So what we observe is the
object cut down to the fields our manager owns (``metadata.managedFields``): the plan
compares like with like, and a field someone else set is not shown as drift.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shipyard.sdk.errors import TargetUnavailable, TransientError
from shipyard.sdk.kubernetes import MANAGED_BY

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
FIELD_MANAGER = "shipyard"


@dataclass(frozen=True)
class ServingStatus:
    """What KServe reports about one InferenceService."""

    ready: bool
    url: str | None
    traffic: tuple[tuple[str, int], ...]  # (revision or tag, percent)


class InferenceServices:
    """Reads and server-side-applies the InferenceServices Shipyard manages in one cluster."""

    def __init__(self, context: str | None = None) -> None:
        from kubernetes import client, config

        try:
            # The file named now: the client reads $KUBECONFIG once, when it is first imported.
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), context=context)
        except config.ConfigException:
            try:
                config.load_incluster_config()
            except config.ConfigException as error:
                raise TargetUnavailable(
                    f"no Kubernetes credentials for context {context or '(current)'}: {error}",
                    hint="point $KUBECONFIG at the cluster (aws eks update-kubeconfig), or run inside it",
                ) from error
        self._api = client.ApiClient()
        self._objects = client.CustomObjectsApi(self._api)
        self._errors = client.ApiException

    def list(self) -> list[dict[str, Any]]:
        """Every managed InferenceService, in all namespaces."""
        selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
        with self._calls():
            found = self._objects.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=selector)
        return list(found.get("items", []))

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``manifest``; we own every field in it, taking over conflicting ones."""
        meta = manifest["metadata"]
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}/{{name}}"
        with self._calls():
            applied = self._api.call_api(
                path,
                "PATCH",
                {"namespace": meta["namespace"], "name": meta["name"]},
                [("fieldManager", FIELD_MANAGER), ("force", "true")],
                {"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
                body=manifest,
                auth_settings=["BearerToken"],
                response_type="object",
                _return_http_data_only=True,
            )
        return dict(applied)

    def delete(self, namespace: str, name: str) -> None:
        with self._calls():
            try:
                self._objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            except self._errors as error:
                if error.status != 404:  # already gone is what we wanted
                    raise

    @contextlib.contextmanager
    def _calls(self) -> Iterator[None]:
        """API errors become Shipyard errors: 5xx and 429 are retried, the rest explained."""
        import urllib3

        try:
            yield
        except self._errors as error:
            status = error.status or 0
            message = f"the Kubernetes API answered {status} {error.reason}: {(error.body or '').strip()[:300]}"
            if status >= 500 or status == 429:
                raise TransientError(message) from error
            hint = {
                401: "the credentials in $KUBECONFIG are not accepted",
                403: "the identity applying needs get/list/patch/delete on inferenceservices.serving.kserve.io",
                404: "is KServe installed? The InferenceService CRD was not found",
                422: "the cluster's InferenceService CRD refused the manifest; is KServe older than 0.21?",
            }.get(status, "")
            raise TargetUnavailable(message, hint=hint) from error
        except urllib3.exceptions.HTTPError as error:
            raise TargetUnavailable(
                f"the Kubernetes API did not answer: {error}", hint="check $KUBECONFIG and the network path"
            ) from error


def owned(item: dict[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any]:
    """``item`` cut down to the fields ``manager`` applied, per its ``managedFields`` entry."""
    entries = [
        e
        for e in item.get("metadata", {}).get("managedFields", [])
        if e.get("manager") == manager and e.get("operation") == "Apply"
    ]
    kept: dict[str, Any] = {"apiVersion": item.get("apiVersion"), "kind": item.get("kind")}
    for entry in entries:
        kept |= _project(item, entry.get("fieldsV1", {}))
    return kept


def _project(value: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``value`` named in a fieldsV1 set (``f:<key>``); lists and leaves are taken whole."""
    kept = {}
    for field, below in fields.items():
        if not field.startswith("f:"):
            continue  # "." (the object itself), "k:"/"v:"/"i:" list members: their list is taken whole
        name = field[2:]
        if name not in value:
            continue
        child = value[name]
        named = any(k.startswith("f:") for k in below)
        kept[name] = _project(child, below) if isinstance(child, dict) and named else child
    return kept


def status(item: dict[str, Any]) -> ServingStatus:
    found = item.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in found.get("conditions", []))
    traffic = found.get("components", {}).get("predictor", {}).get("traffic", [])
    split = tuple((str(t.get("tag") or t.get("revisionName") or "latest"), int(t.get("percent", 0))) for t in traffic)
    return ServingStatus(ready, found.get("url"), split)
