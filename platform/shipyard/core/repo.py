"""Loads every spec in a repository tree and checks references between them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from shipyard.core.specs import validate_document
from shipyard.core.yamlsource import YamlDocument, read_yaml
from shipyard.sdk.errors import SpecError
from shipyard.sdk.kinds import Kind, Spec, SpecSet
from shipyard.sdk.model import Diagnostic

TEAM_KIND = "Team"


def spec_files(root: Path, kinds: Iterable[Kind]) -> list[Path]:
    """Files any kind's globs match, sorted so that load order is stable."""
    found: set[Path] = set()
    for kind in kinds:
        for pattern in kind.globs:
            found.update(path for path in root.glob(pattern) if path.is_file())
    return sorted(found)


def load_specs(root: Path, kinds: Mapping[str, Kind]) -> SpecSet:
    """Every spec under ``root``; raises SpecError carrying every problem found."""
    specs: list[Spec] = []
    documents: dict[str, YamlDocument] = {}
    diagnostics: list[Diagnostic] = []
    for path in spec_files(root, kinds.values()):
        display = path.relative_to(root).as_posix()
        parsed, problems = read_yaml(path, display)
        diagnostics += problems
        for doc in parsed:
            spec, problems = validate_document(doc, kinds)
            diagnostics += problems
            if spec is not None:
                specs.append(spec)
                documents[spec.ref] = doc
    diagnostics += cross_reference(specs, documents)
    if diagnostics:
        raise SpecError(sorted(diagnostics, key=lambda d: (d.position is None, d.position or "")))
    return SpecSet(tuple(specs))


def cross_reference(specs: list[Spec], documents: Mapping[str, YamlDocument]) -> list[Diagnostic]:
    """Names unique per kind (within a team) and ``metadata.team`` naming a Team."""
    diagnostics: list[Diagnostic] = []
    teams = {spec.name for spec in specs if spec.kind == TEAM_KIND}
    seen: dict[str, Spec] = {}
    for spec in specs:
        doc = documents[spec.ref]
        if spec.ref in seen:
            first = seen[spec.ref].source
            position = doc.position(("metadata", "name"))
            diagnostics.append(
                Diagnostic.mismatch(
                    "spec/duplicate-name",
                    got=f"a second {spec.kind} named '{spec.name}'",
                    expected=f"names unique per kind{' within a team' if spec.team else ''}",
                    hint=f"the first is at {first}; rename one",
                    position=position,
                    key_path="metadata.name",
                    snippet=doc.snippet(position),
                )
            )
            continue
        seen[spec.ref] = spec
        if spec.team is not None and spec.team not in teams:
            position = doc.position(("metadata", "team"))
            known = ", ".join(sorted(teams)) or "none defined"
            diagnostics.append(
                Diagnostic.mismatch(
                    "spec/unknown-team",
                    got=f"team '{spec.team}'",
                    expected=f"an existing Team ({known})",
                    hint="add platform/teams/<team>.yaml (kind: Team), or fix the name",
                    position=position,
                    key_path="metadata.team",
                    snippet=doc.snippet(position),
                )
            )
    return diagnostics
