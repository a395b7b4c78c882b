"""Desired state and the planes' checks, unit by unit, reusing every unit whose inputs were seen before.

A plane that declares ``units`` (``Plane.units``: a team's part, a stack's, with the files and
facts each reads) is computed only for the units whose digest the cache does not hold; the
rest come back from ``.shipyard/cache/`` or from earlier in the same run (a pull request's
plan computes its base and head revisions: every unit the change did not touch is computed
once). The digest covers the inputs, the environment, and the code that computes them
(``code_version``), so a cached unit is exactly what computing it again would give.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import shipyard
from shipyard.sdk.cache import Cache, Unit
from shipyard.sdk.errors import InternalError
from shipyard.sdk.model import Diagnostic, Resource, Severity, SourcePosition
from shipyard.sdk.planes import DesiredContext, Plane, ensure_state_root

CACHE_DIR = "cache"  # under .shipyard/


@dataclass(frozen=True)
class Evaluation:
    """Every plane's desired Resources and check findings, and which units were reused or computed."""

    resources: list[Resource]
    findings: tuple[Diagnostic, ...] = ()
    #: Per plane with units: the scopes taken from the cache, and those computed.
    reused: dict[str, tuple[str, ...]] = field(default_factory=dict)
    computed: dict[str, tuple[str, ...]] = field(default_factory=dict)


def reuse(evaluations: Mapping[str, Evaluation]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per side of a plan (``head``, ``base``) and plane with units: how many units were reused, which computed."""
    return {
        side: {
            plane: {"reused": len(found.reused[plane]), "computed": list(found.computed[plane])}
            for plane in found.reused
        }
        for side, found in evaluations.items()
    }


def repository_cache(root: Path) -> Cache:
    """The cache of the repository at ``root``: ``.shipyard/cache/``, kept across runs."""
    return Cache(ensure_state_root(root) / CACHE_DIR, code_version())


def evaluate(planes: Sequence[Plane], ctxs: Mapping[str, DesiredContext], cache: Cache, *, check: bool) -> Evaluation:
    """Each plane's desired state (and, with ``check``, its checks' findings), unit by unit."""
    units = {plane.name: plane.units(ctxs[plane.name]) for plane in planes}
    digests = {
        plane.name: {u.scope: _digest(cache, plane, ctxs[plane.name], u) for u in found}
        for plane in planes
        if (found := units[plane.name]) is not None
    }
    volatile = {name: frozenset(u.scope for u in found if u.volatile) for name, found in units.items() if found}
    kept = {name: {s: cache.get(_namespace(name), d) for s, d in each.items()} for name, each in digests.items()}
    for plane in planes:  # only planes with something to compute start their workers
        own = kept.get(plane.name)
        if (
            own is None
            or any(v is None or (check and "findings" not in v) for v in own.values())
            or (check and volatile.get(plane.name))
        ):
            plane.warm_up(ctxs[plane.name].root)

    # Planes are independent (none imports another; desired is pure): while one waits on its processes
    # (Pulumi's program, Feast's parse, KFP's compiler), the others compute theirs.
    with ThreadPoolExecutor(max_workers=len(planes) or 1, thread_name_prefix="plane") as pool:
        running = [
            pool.submit(
                _plane,
                plane,
                replace(ctxs[plane.name], cache=cache),
                digests.get(plane.name),
                kept,
                volatile.get(plane.name, frozenset()),
                check,
            )
            for plane in planes
        ]
        answers = [future.result() for future in running]  # in plane order: the first plane's error is raised
    resources = [r for own, _ in answers for r in own]
    findings = tuple(d for _, found in answers for d in found)
    reused = {n: tuple(s for s in each if kept[n][s] is not None) for n, each in digests.items()}
    computed = {n: tuple(s for s in each if kept[n][s] is None) for n, each in digests.items()}
    return Evaluation(resources, findings, reused, computed)


def _plane(
    plane: Plane,
    ctx: DesiredContext,
    digests: Mapping[str, str] | None,
    kept: Mapping[str, Mapping[str, Any]],
    volatile: frozenset[str],
    check: bool,
) -> tuple[list[Resource], list[Diagnostic]]:
    """One plane's Resources and findings: unit by unit through the cache, or whole when it has no units."""
    if digests is None:
        whole = list(plane.desired(ctx))
        return whole, list(plane.check(ctx, whole)) if check else []
    assert ctx.cache is not None
    entries = _by_unit(plane, ctx, digests, kept[plane.name], volatile, ctx.cache, check=check)
    resources = [Resource.from_dict(r) for entry in entries.values() for r in entry["resources"]]
    return resources, [_finding(d) for entry in entries.values() for d in entry.get("findings", ())]


def _by_unit(
    plane: Plane,
    ctx: DesiredContext,
    digests: Mapping[str, str],
    kept: Mapping[str, Any],
    volatile: frozenset[str],
    cache: Cache,
    *,
    check: bool,
) -> dict[str, dict[str, Any]]:
    """Each unit's entry (Resources, and findings when checked), computing the missing ones in one call."""
    entries: dict[str, dict[str, Any]] = {s: dict(v) for s, v in kept.items() if v is not None}
    missing = frozenset(s for s in digests if s not in entries)
    if missing:
        fresh: dict[str, list[dict[str, Any]]] = {s: [] for s in missing}
        for resource in plane.desired(replace(ctx, scopes=missing)):
            if resource.scope not in fresh:
                raise InternalError(
                    f"the {plane.name} plane gave {resource.key}, of a scope it was not asked for (a plane bug)"
                )
            fresh[resource.scope].append(resource.to_dict())
        entries |= {s: {"resources": r} for s, r in fresh.items()}
    if check:
        for scope in (s for s in digests if s in volatile or "findings" not in entries[s]):
            own = [Resource.from_dict(r) for r in entries[scope]["resources"]]
            found = plane.check(replace(ctx, scopes=frozenset({scope})), own)
            entries[scope]["findings"] = [_finding_dict(d) for d in found]
    for scope, entry in entries.items():
        keep = {"resources": entry["resources"]} if scope in volatile else entry  # its findings last one plan
        if kept.get(scope) != keep:
            cache.put(_namespace(plane.name), digests[scope], keep)
    return {s: entries[s] for s in digests}


def _finding_dict(finding: Diagnostic) -> dict[str, Any]:
    where = finding.position
    return asdict(finding) | {"position": None if where is None else [where.file, where.line, where.column]}


def _finding(data: Mapping[str, Any]) -> Diagnostic:
    where = data["position"]
    position = None if where is None else SourcePosition(*where)
    return Diagnostic(**(dict(data) | {"position": position, "severity": Severity(data["severity"])}))


def _namespace(plane: str) -> str:
    return f"desired/{plane}"


def _digest(cache: Cache, plane: Plane, ctx: DesiredContext, unit: Unit) -> str:
    inputs = [plane.name, plane_version(type(plane)), ctx.environment, ctx.live, unit.scope, unit.facts]
    return cache.digest(ctx.root, unit.paths, inputs)


@cache
def code_version() -> str:
    """Shipyard's own source and the Python running it: a cache made by other code is never read."""
    found = hashlib.sha256(f"{shipyard.__version__} {sys.version}".encode())
    package = Path(shipyard.__file__).parent
    for path in sorted(package.rglob("*.py")):
        found.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return found.hexdigest()


@cache
def plane_version(plane: type[Plane]) -> str:
    """The plane's own code (when it is a plugin's, outside Shipyard) and the versions of its libraries."""
    found = hashlib.sha256(plane.__module__.encode())
    module = sys.modules[plane.__module__]
    source = Path(module.__file__ or "")
    if not source.is_relative_to(Path(shipyard.__file__).parent):
        files = sorted(source.parent.rglob("*.py")) if source.name == "__init__.py" else [source]
        for path in files:
            found.update(path.read_bytes())
    for library in plane.libraries:
        try:
            found.update(f"{library}=={importlib.metadata.version(library)};".encode())
        except importlib.metadata.PackageNotFoundError:
            found.update(f"{library} absent;".encode())
    return found.hexdigest()
