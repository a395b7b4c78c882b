"""Loads every spec in a repository tree and checks references between them.

A spec is a regular file inside the repository. One that is a symbolic link, or sits under a
linked folder, is refused before it is read: a pull request could otherwise point
``platform/teams/env.yaml`` at ``/proc/self/environ`` or a secrets file and have its content
echoed into CI logs, annotations and PR comments. Links pointing inside the repository are
refused too (the rule is simply "no links"): a reviewer sees a link's target path, not the spec
it would load.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from shipyard.core.specs import validate_document
from shipyard.core.yamlsource import YamlDocument, read_yaml
from shipyard.sdk.errors import SpecError
from shipyard.sdk.files import linked
from shipyard.sdk.kinds import Kind, Spec, SpecSet
from shipyard.sdk.model import Diagnostic

TEAM_KIND = "Team"


def spec_files(root: Path, kinds: Iterable[Kind]) -> list[Path]:
    """Files any kind's globs match, sorted so that load order is stable.

    Links are listed too, dangling ones included, so that the loader refuses them rather than
    skipping them unseen.
    """
    found: set[Path] = set()
    for kind in kinds:
        for pattern in kind.globs:
            found.update(path for path in root.glob(pattern) if path.is_symlink() or path.is_file())
    return sorted(found)


def load_specs(root: Path, kinds: Mapping[str, Kind]) -> SpecSet:
    """Every spec under ``root``; raises SpecError carrying every problem found.

    Root causes (a file that is a link, is not YAML, or a document that does not validate) come
    first, then what cross-checking the valid specs found. A Team whose file is there but broken
    is a root cause once: the specs of that team are not also reported as naming an unknown team.
    """
    specs: list[Spec] = []
    documents: dict[str, YamlDocument] = {}
    diagnostics: list[Diagnostic] = []
    links: dict[str, Diagnostic] = {}  # one finding per link, however many files lie behind it
    team_files = set(spec_files(root, [kinds[TEAM_KIND]])) if TEAM_KIND in kinds else set()
    broken_teams: set[str] = set()
    for path in spec_files(root, kinds.values()):
        display = path.relative_to(root).as_posix()
        link = linked(root, path)
        if link is not None:
            links.setdefault(str(link.position), link)
            if path in team_files:
                broken_teams.add(path.stem)
            continue
        parsed, problems = read_yaml(path, display)
        diagnostics += problems
        failed = bool(problems)
        for doc in parsed:
            spec, problems = validate_document(doc, kinds)
            diagnostics += problems
            if spec is not None:
                specs.append(spec)
                documents[spec.ref] = doc
                continue
            failed = True
            if path in team_files or _kind_of(doc) == TEAM_KIND:
                broken_teams.update(_name_of(doc))
        if failed and path in team_files:
            broken_teams.add(path.stem)  # the file's name: all that is known when it does not parse
    diagnostics = _in_order(diagnostics + list(links.values()))
    diagnostics += _in_order(cross_reference(specs, documents, broken_teams))
    if diagnostics:
        raise SpecError(diagnostics)
    return SpecSet(tuple(specs))


def _in_order(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=lambda d: (d.position is None, d.position or ""))


def _kind_of(doc: YamlDocument) -> object:
    return doc.data.get("kind") if isinstance(doc.data, dict) else None


def _name_of(doc: YamlDocument) -> list[str]:
    """The name a document that failed to validate gives itself, if it gives one."""
    metadata = doc.data.get("metadata") if isinstance(doc.data, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return [name] if isinstance(name, str) else []


def cross_reference(
    specs: list[Spec], documents: Mapping[str, YamlDocument], broken_teams: Collection[str] = ()
) -> list[Diagnostic]:
    """Names unique per kind (within a team) and ``metadata.team`` naming a Team.

    A team in ``broken_teams`` (its file is there but did not load) is reported where it is
    written, so naming it is not an error a second time.
    """
    diagnostics: list[Diagnostic] = []
    teams = {spec.name for spec in specs if spec.kind == TEAM_KIND} | set(broken_teams)
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
