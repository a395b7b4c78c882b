"""Desired Kubernetes objects as a folder of plain YAML that a GitOps controller syncs (``shipyard render``). Pure.

A Resource is written when its body is a Kubernetes object (``sdk.kubernetes.is_object``),
whichever plane made it; the rest (model aliases, pipelines, feature definitions, cloud
resources) only Shipyard's appliers make true. The layout, one folder per scope (a team)::

    kustomization.yaml                  resources: every scope folder
    fraud/kustomization.yaml            resources: every file in the folder
    fraud/namespace-fraud.yaml          one object a file: <kind>-<name>.yaml, lowercased
    fraud/inferenceservice-fraud-scorer.yaml

A team's Namespace is in its team's folder, with what lives in it. Keys are sorted and
files listed by name, so the same Resources always give the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import yaml

from shipyard.sdk.errors import InternalError
from shipyard.sdk.kubernetes import is_object
from shipyard.sdk.model import Diagnostic, Resource, Severity

KUSTOMIZATION = "kustomization.yaml"
#: The first line of every file render writes; a folder whose kustomization starts with it is render's.
HEADER = "# Rendered by shipyard render"
_KUSTOMIZE = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
#: What a folder and a file may be named after: a team (scope), a kind, an object's name (DNS-1123).
_SCOPE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def kubernetes_objects(resources: Sequence[Resource]) -> list[Resource]:
    """The Resources whose body is a Kubernetes object, in the order given."""
    return [r for r in resources if is_object(r.body)]


def with_checkov_skips(
    objects: Sequence[Resource], findings: Sequence[Diagnostic], checkov_ids: Mapping[str, Sequence[str]]
) -> list[Resource]:
    """``objects`` with a ``checkov.io/skipN: <id>=<why>`` annotation for each Checkov id a waived finding on
    them names (``checkov_ids``: by rule): the waiver in Checkov's own form, so it expires with the ledger."""
    skips: dict[str, list[str]] = {}
    for finding in findings:
        if finding.severity is Severity.WAIVED and finding.subject:
            reason = finding.hint.replace("\n", " ")
            skips.setdefault(finding.subject, []).extend(f"{c}={reason}" for c in checkov_ids.get(finding.rule, ()))
    out = []
    for resource in objects:
        found = sorted(set(skips.get(resource.key, ())))
        if found:
            body = json.loads(json.dumps(resource.body))  # a copy: Resources are shared with the plan
            annotations = body["metadata"].setdefault("annotations", {})
            annotations.update({f"checkov.io/skip{n}": skip for n, skip in enumerate(found, 1)})
            resource = replace(resource, body=body)
        out.append(resource)
    return out


def file_name(body: Mapping[str, Any]) -> str:
    """``<kind>-<name>.yaml``, lowercased: ``inferenceservice-fraud-scorer.yaml``."""
    return f"{body['kind']}-{body['metadata']['name']}.yaml".lower()


def manifest_files(resources: Sequence[Resource], environment: str) -> dict[str, str]:
    """Every file of the folder, by its path in it (``fraud/namespace-fraud.yaml``), sorted.

    Raises InternalError when an object cannot be named in a file (a plane bug): a scope or
    name outside Kubernetes' naming rules, or two objects that would share a file.
    """
    folders: dict[str, dict[str, Resource]] = {}
    for resource in kubernetes_objects(resources):
        _require_nameable(resource)
        folder = folders.setdefault(resource.scope, {})
        name = file_name(resource.body)
        if name in folder:
            raise InternalError(
                f"{folder[name].key} and {resource.key} would both be written to {resource.scope}/{name} "
                "(two planes declare the same Kubernetes object; a plane bug)"
            )
        folder[name] = resource
    command = f"{HEADER} --env {environment}"
    files: dict[str, str] = {}
    for scope in sorted(folders):
        for name, resource in sorted(folders[scope].items()):
            origin = f" from {resource.source.file}" if resource.source else ""
            files[f"{scope}/{name}"] = _yaml(
                resource.body, f"{command}{origin} ({resource.key}): change the spec, not this file."
            )
        files[f"{scope}/{KUSTOMIZATION}"] = _yaml(
            {**_KUSTOMIZE, "resources": sorted(folders[scope])}, f"{command}: the objects of {scope}."
        )
    files[KUSTOMIZATION] = _yaml(
        {**_KUSTOMIZE, "resources": sorted(folders)},
        f"{command}: one folder per team. Render replaces what it wrote here; edit the specs, not these files.",
    )
    return dict(sorted(files.items()))


def listed(text: str) -> list[str] | None:
    """The ``resources`` a kustomization render wrote lists; None when ``text`` is not one render wrote."""
    if not text.startswith(HEADER):
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    entries = data.get("resources") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        return None
    return list(entries)


def _require_nameable(resource: Resource) -> None:
    kind, name = resource.body["kind"], resource.body["metadata"]["name"]
    problem = ""
    if not _SCOPE.match(resource.scope) or len(resource.scope) > 63:
        problem = f"its scope '{resource.scope}' is not a DNS-1123 label, so no folder is named after it"
    elif not _KIND.match(kind):
        problem = f"its kind '{kind}' is not a Kubernetes kind name"
    elif not _NAME.match(name) or len(name) > 253:
        problem = f"metadata.name '{name}' is not a DNS-1123 subdomain"
    if problem:
        raise InternalError(f"{resource.key} cannot be rendered as a manifest: {problem} (a plane bug)")


def _yaml(data: Mapping[str, Any], comment: str) -> str:
    plain = json.loads(json.dumps(data))  # plain dicts and lists, whatever Mapping a plane built
    body = yaml.safe_dump(plain, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1000)
    return f"{comment}\n{body}"
