"""Rules on the Feast objects each team declares (the features plane's desired Resources): personal data has
an owner and expires, and every Feast project is a team's.

A feature is personal data when its FeatureView or one of its fields carries a ``pii`` tag
(``tags={"pii": "true"}``) or a tag whose value is ``pii`` (``tags={"classification": "pii"}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from shipyard.sdk import Diagnostic, PolicyContext, rule
from shipyard.sdk.model import Resource

PLANE = "features"
TEAM = "Team"
#: Feast kinds whose rows are features, and those of them that keep rows for a TTL.
VIEWS = frozenset({"FeatureView", "StreamFeatureView", "OnDemandFeatureView"})
EXPIRING = frozenset({"FeatureView", "StreamFeatureView"})
PII = "pii"
_FALSE = frozenset({"", "false", "no", "0", "off"})
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)s$")


def _is_pii(tags: object) -> bool:
    if not isinstance(tags, Mapping):
        return False
    for key, value in tags.items():
        if str(key).lower() == PII and str(value).strip().lower() not in _FALSE:
            return True
        if str(value).strip().lower() == PII:
            return True
    return False


def _pii_fields(body: Mapping[str, Any]) -> list[str]:
    fields = [*body.get("features", []), *body.get("schema", [])]
    return sorted({str(f.get("name")) for f in fields if isinstance(f, Mapping) and _is_pii(f.get("tags"))})


def _pii_views(ctx: PolicyContext) -> Iterator[tuple[Resource, str]]:
    """Each view holding personal data, with what makes it so (for the message)."""
    for resource in ctx.resources or ():
        if resource.plane != PLANE or resource.kind not in VIEWS:
            continue
        fields = _pii_fields(resource.body)
        if _is_pii(resource.body.get("tags")):
            yield resource, "a view tagged pii"
        elif fields:
            yield resource, f"pii fields {', '.join(fields)}"


def _finding(resource: Resource, key: str, *, got: str, expected: str) -> Diagnostic:
    found = Diagnostic.mismatch("policy", got=got, expected=expected, position=resource.source, key_path=key)
    return replace(found, subject=resource.key)  # a waiver names the Resource


def _seconds(ttl: object) -> float:
    """A Feast TTL (``"172800s"``, a number of seconds, or None) in seconds; 0 means rows never expire."""
    if isinstance(ttl, int | float):
        return float(ttl)
    match = _DURATION.match(str(ttl)) if ttl is not None else None
    return float(match.group(1)) if match else 0.0


@rule(
    "SY-FEA-001",
    "Features tagged pii have an owner.",
    target=f"resource:{PLANE}/FeatureView",
    needs_resources=True,
    hint="add tags={'owner': '<team e-mail or @handle>'} to the FeatureView: someone answers for personal data",
)
def pii_has_owner(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource, why in _pii_views(ctx):
        tags = resource.body.get("tags")
        owner = tags.get("owner") if isinstance(tags, Mapping) else None
        if not owner or not str(owner).strip():
            yield _finding(resource, "tags.owner", got=f"{why} and no owner tag", expected="tags['owner']")


@rule(
    "SY-FEA-002",
    "Features tagged pii expire: their view has a TTL.",
    target=f"resource:{PLANE}/FeatureView",
    needs_resources=True,
    hint="set ttl=timedelta(...) on the FeatureView: personal data kept without end is data kept without purpose",
)
def pii_has_ttl(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource, why in _pii_views(ctx):
        if resource.kind in EXPIRING and _seconds(resource.body.get("ttl")) <= 0:
            yield _finding(
                resource, "ttl", got=f"{why} and ttl {resource.body.get('ttl')!r}", expected="a TTL above zero"
            )


@rule(
    "SY-FEA-003",
    "Every Feast project belongs to a team (a Team spec of the same name).",
    target=f"resource:{PLANE}",
    needs_resources=True,
    hint="put Feast definitions under features/<team>/ for a team declared in platform/teams/<team>.yaml",
)
def project_belongs_to_team(ctx: PolicyContext) -> Iterator[Diagnostic]:
    teams = {spec.name for spec in ctx.specs.of_kind(TEAM)}
    seen: set[str] = set()
    for resource in ctx.resources or ():
        if resource.plane != PLANE or resource.scope in teams or resource.scope in seen:
            continue
        seen.add(resource.scope)
        yield _finding(
            resource,
            "project",
            got=f"Feast project '{resource.scope}' with no Team spec",
            expected=f"one of the teams: {', '.join(sorted(teams)) or 'none'}",
        )
