"""``shipyard render``: an environment's desired Kubernetes objects as plain YAML, for a GitOps controller.

The desired state comes from the same pure path as a plan (``planner.validate``, ``contexts``,
``desired_state``), from git alone as a ``base:<rev>`` plan computes it, or over the facts a
reviewed plan pinned. Policies and the checks of every plane that has objects to write (the
InferenceService CRD schema) run as in a plan; the CLI writes nothing when one fails.

Writing (``write``) owns its folder: it writes into a new or empty folder, or one an earlier
render made (its ``kustomization.yaml`` starts with ``core.render.manifests.HEADER``). There it
rewrites what changed and removes the files it listed before and renders no more; files it did
not write are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.core.render.manifests import (
    KUSTOMIZATION,
    kubernetes_objects,
    listed,
    manifest_files,
    with_checkov_skips,
)
from shipyard.engine import planner
from shipyard.engine.evaluation import repository_cache
from shipyard.engine.registry import Registry
from shipyard.sdk.errors import UserError
from shipyard.sdk.kinds import Kind, SpecSet
from shipyard.sdk.model import Diagnostic, Resource
from shipyard.sdk.platform import ENVIRONMENT

#: A folder or file name render may have written (it never removes anything else).
_OWN_ENTRY = re.compile(r"^[a-z0-9][-a-z0-9.]*$")
_WILDCARD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Rendering:
    """What ``render`` computed: the files, the objects in them, and what was left out and why.

    ``others`` are desired Resources that are not Kubernetes objects (no manifest can make them
    true); ``pinned`` names the planes rendered over pinned facts rather than git alone.
    """

    environment: str
    files: Mapping[str, str]
    objects: tuple[Resource, ...]
    others: tuple[Resource, ...]
    findings: tuple[Diagnostic, ...]
    pinned: tuple[str, ...] = ()


@dataclass(frozen=True)
class Written:
    written: tuple[str, ...]  # files whose content changed (or that are new)
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]  # files an earlier render wrote that this one no longer renders


def render(registry: Registry, root: Path, environment: str, facts: Mapping[str, Any] | None = None) -> Rendering:
    """The files of ``environment``'s rendered folder, with every finding; ``facts`` (by plane, as a
    reviewed plan pinned them) replace git alone for the planes they name."""
    validation = planner.validate(registry, root)
    require_environment(validation.specs, environment)
    cache = repository_cache(root)
    ctxs = planner.contexts(registry, root, validation.specs, environment, None, cache)
    facts = facts or {}
    pinned = tuple(sorted(name for name in ctxs if facts.get(name)))
    for name in pinned:
        ctxs[name] = replace(ctxs[name], live=True, facts=facts[name])
    desired = planner.desired_state(registry, ctxs, cache)
    findings = validation.findings + validation.resource_findings(desired)
    objects = kubernetes_objects(desired)
    for plane in registry.planes:
        if any(r.plane == plane.name for r in objects):
            findings += tuple(plane.check(ctxs[plane.name], [r for r in desired if r.plane == plane.name]))
    keys = {r.key for r in objects}
    others = tuple(r for r in desired if r.key not in keys)
    checkov_ids = {
        p.id: [r.removeprefix("checkov:") for r in p.references if r.startswith("checkov:")]
        for p in validation.rules.policies
    }
    objects = with_checkov_skips(objects, findings, checkov_ids)
    return Rendering(environment, manifest_files(objects, environment), tuple(objects), others, findings, pinned)


def require_environment(specs: SpecSet, environment: str) -> None:
    """A UserError unless an Environment spec declares ``environment``."""
    known = sorted(spec.name for spec in specs.of_kind(ENVIRONMENT.name))
    if environment in known:
        return
    choices = ", ".join(known) if known else "none yet: add platform/environments/<name>.yaml (kind: Environment)"
    if environment == "local":
        raise UserError(
            "the local platform is no Kubernetes cluster: `shipyard up` applies it, there is nothing to render",
            hint=f"render a cloud environment: {choices}",
        )
    raise UserError(f"unknown environment '{environment}'", hint=f"environments: {choices}")


def write(
    out: Path, files: Mapping[str, str], root: Path, kinds: Mapping[str, Kind], *, check: bool = False
) -> Written:
    """Make ``out`` hold exactly ``files`` among what render writes (see the module's docstring);
    ``check`` only says what that would change."""
    _refuse_spec_folder(out, root, kinds)
    before = _written_before(out)
    written: list[str] = []
    unchanged: list[str] = []
    for relative, text in files.items():
        path = out / relative
        same = path.is_file() and path.read_text(encoding="utf-8") == text
        (unchanged if same else written).append(relative)
    removed = sorted(r for r in set(before) - set(files) if (out / r).is_file())
    if check:
        return Written(tuple(written), tuple(unchanged), tuple(removed))
    for relative in written:
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[relative], encoding="utf-8")
    for relative in removed:
        (out / relative).unlink()
    for folder in sorted({PurePosixPath(r).parent for r in removed} - {PurePosixPath(".")}):
        path = out / folder
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return Written(tuple(written), tuple(unchanged), tuple(removed))


def _written_before(out: Path) -> list[str]:
    """The files an earlier render listed in ``out``; refuses a folder that is not empty and not render's."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise UserError(f"--out {out} is a file", hint="name a folder (it is created if it does not exist)")
    if not any(out.iterdir()):
        return []
    top = out / KUSTOMIZATION
    folders = listed(top.read_text(encoding="utf-8")) if top.is_file() else None
    if folders is None:
        raise UserError(
            f"refusing to write into {out}: it is not empty and no earlier `shipyard render` made it",
            hint="render into a new or empty folder; render then keeps that folder up to date",
        )
    found = [KUSTOMIZATION]
    for folder in filter(_OWN_ENTRY.match, folders):
        kustomization = out / folder / KUSTOMIZATION
        entries = listed(kustomization.read_text(encoding="utf-8")) if kustomization.is_file() else None
        if entries is not None:
            found.append(f"{folder}/{KUSTOMIZATION}")
            found += [f"{folder}/{e}" for e in entries if _OWN_ENTRY.match(e) and e.endswith(".yaml")]
    return found


def _refuse_spec_folder(out: Path, root: Path, kinds: Mapping[str, Kind]) -> None:
    """Rendered YAML under a folder specs are read from would be loaded as specs next time."""
    try:
        relative = out.resolve().relative_to(root.resolve())
    except ValueError:
        return  # outside the repo
    for kind in kinds.values():
        for glob in kind.globs:
            parts = PurePosixPath(glob).parts
            literal = parts[: next((i for i, p in enumerate(parts) if _WILDCARD.search(p)), len(parts))]
            if literal and relative.parts[: len(literal)] == literal:
                raise UserError(
                    f"refusing to render into {out}: {kind.name} specs are read from {glob}",
                    hint="render outside the spec folders, e.g. --out deploy/<env>",
                )
