"""The models plane's adapter to a cluster: InferenceServices (and canary routes) by server-side apply, and status.

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

from shipyard.sdk.errors import TargetUnavailable, api_failure
from shipyard.sdk.kubernetes import MANAGED_BY

#: The kinds the models plane manages: (group, version, plural). HTTPRoute splits a Standard-mode canary.
KINDS = {
    "InferenceService": ("serving.kserve.io", "v1beta1", "inferenceservices"),
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes"),
}
FIELD_MANAGER = "shipyard"


@dataclass(frozen=True)
class ServingStatus:
    """What KServe reports about one InferenceService."""

    ready: bool
    url: str | None
    traffic: tuple[tuple[str, int], ...]  # (revision or tag, percent)


class Cluster:
    """Reads and server-side-applies the objects of ``KINDS`` that Shipyard manages in one cluster."""

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
        """Every managed object of every kind, in all namespaces."""
        selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
        found = []
        for kind, (group, version, plural) in KINDS.items():
            with self._calls():
                listed = self._objects.list_cluster_custom_object(group, version, plural, label_selector=selector)
            # List items carry no kind of their own in every server's answer; set it from what was asked.
            found += [item | {"kind": kind} for item in listed.get("items", [])]
        return found

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``manifest``; we own every field in it, taking over conflicting ones."""
        group, version, plural = KINDS[manifest["kind"]]
        meta = manifest["metadata"]
        with self._calls():
            applied = self._api.call_api(
                f"/apis/{group}/{version}/namespaces/{{namespace}}/{plural}/{{name}}",
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

    def delete(self, kind: str, namespace: str, name: str) -> None:
        group, version, plural = KINDS[kind]
        with self._calls():
            try:
                self._objects.delete_namespaced_custom_object(group, version, namespace, plural, name)
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
            hints = {
                401: "the credentials in $KUBECONFIG are not accepted",
                403: "the identity applying needs get/list/patch/delete on inferenceservices.serving.kserve.io "
                "(and httproutes.gateway.networking.k8s.io for Standard-mode canaries)",
                404: "is KServe installed (and the Gateway API, for Standard-mode canaries)? A CRD was not found",
                422: "the cluster's InferenceService CRD refused the manifest; is KServe older than 0.21?",
            }
            status, reason, body = error.status or 0, error.reason, error.body or ""
            raise api_failure("the Kubernetes API", status, reason, body, hints) from error
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
