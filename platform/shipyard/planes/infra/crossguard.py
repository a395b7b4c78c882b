"""Shipyard's infra rules as a Pulumi CrossGuard policy pack: the same rules, the same waivers, the same clock.

``policies/__main__.py`` builds the pack from ``pack_policies``; ``pulumi preview --policy-pack
policies`` runs it inside the Pulumi engine. Each rule over a Pulumi type (its ``target`` is a
type token such as ``aws:s3/bucket:Bucket``) becomes one ``StackValidationPolicy``: the rules
read a plane's whole desired state, as ``shipyard plan`` gives it (a bucket and the separate
encryption, versioning and public-access resources pulumi-aws 7 pairs with it), so the stack
view is the faithful one; a resource-at-a-time view would report a bucket's encryption missing.
Enforcement maps one to one (mandatory → MANDATORY, advisory → ADVISORY).

Fail closed: CrossGuard skips a policy that touches a value unknown at preview with an
advisory note. Here the unknown is handed to the rule as Pulumi's unknown sentinel, which the
rules report as "cannot verify until apply" at their own enforcement, as in ``shipyard plan``.

A finding a waiver in ``policies/waivers.yaml`` covers (on the pack's date, in UTC) is not
reported, so an exception expires in the pack on the day it expires in ``shipyard plan``.
Only the pack imports this module: it imports ``pulumi_policy``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pulumi_policy import EnforcementLevel, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from shipyard.core.policies import run_policies
from shipyard.core.waivers import Waiver, load_waivers
from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.model import Resource
from shipyard.sdk.planes import Policy

PLANE = "infra"
#: A Pulumi type token: ``<package>:<module>:<Type>`` (``aws:s3/bucket:Bucket``, ``kubernetes:core/v1:Namespace``).
PULUMI_TYPE = re.compile(r"^[a-z][a-z0-9-]*:[^:\s]+:[A-Za-z][A-Za-z0-9]*$")
ReportViolation = Callable[..., None]


def infra_rules(policies: Sequence[Policy]) -> list[Policy]:
    """The rules over Pulumi resources: those the pack runs."""
    return [p for p in policies if p.needs_resources and PULUMI_TYPE.match(p.target)]


def pack_policies(policies: Sequence[Policy], root: Path, today: date) -> list[StackValidationPolicy]:
    """One CrossGuard policy per infra rule, skipping what the waivers in force on ``today`` cover."""
    rules = infra_rules(policies)
    waivers, _ = load_waivers(root, {p.id for p in policies}, today)
    return [adapt(rule, waivers) for rule in rules]


def adapt(rule: Policy, waivers: Sequence[Waiver] = ()) -> StackValidationPolicy:
    """``rule`` as a stack policy: the stack's resources become infra Resources, each finding a violation."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        urns: dict[str, str] = {}
        resources = []
        for found in args.resources:
            resource = Resource(PLANE, found.resource_type, _stack(found.urn), found.name, body(found))
            urns[resource.key] = found.urn
            resources.append(resource)
        for finding in run_policies([rule], SpecSet(), resources):
            if any(w.covers(finding) for w in waivers):
                continue
            hint = f" ({finding.hint})" if finding.hint else ""
            report_violation(
                f"{finding.key_path + ': ' if finding.key_path else ''}{finding.message}{hint}",
                urns.get(finding.subject),
            )

    level = EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY
    return StackValidationPolicy(name=rule.id, description=rule.summary, validate=validate, enforcement_level=level)


def body(found: Any) -> dict[str, Any]:
    """A resource as the infra plane's Resources hold it: its inputs, and its parent."""
    parent = getattr(found, "parent", None)
    shaped: dict[str, Any] = {"inputs": plain(found.props)}
    if parent is not None:
        shaped["parent"] = f"{parent.resource_type}::{parent.name}"
    return shaped


def plain(value: Any) -> Any:
    """Plain data from CrossGuard's unknown-checking proxies: a value unknown at preview becomes Pulumi's
    unknown sentinel, which the rules report as something they cannot verify until apply."""
    if isinstance(value, Mapping):
        out = {}
        for key in value:
            try:
                out[key] = plain(value[key])
            except UnknownValueError:
                out[key] = UNKNOWN_STRING_VALUE
        return out
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN_STRING_VALUE)
        return items
    return value


def _stack(urn: str) -> str:
    """The stack a URN names: ``urn:pulumi:<stack>::<project>::<type>::<name>``."""
    return urn.split("::", 1)[0].rsplit(":", 1)[-1]
