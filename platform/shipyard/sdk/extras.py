"""Turns "No module named X" into the install command for the extra that brings X.

Each plane's heavy libraries are optional extras of the ``shipyard`` distribution
(``pip install shipyard`` gives only the engine). The extras are read from the installed
distribution's own metadata, so this never drifts from ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.metadata
import re

from shipyard.sdk.errors import MissingExtra

#: Distributions whose import name is not their normalised project name.
_IMPORT_NAMES = {"scikit_learn": "sklearn", "protobuf": "google"}
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*).*;\s*extra\s*==\s*['\"]([\w-]+)['\"]")


def extras_providing(module: str) -> list[str]:
    """The extras of ``shipyard`` that install the top-level ``module`` (empty if none does)."""
    top = module.split(".", 1)[0]
    try:
        requirements = importlib.metadata.requires("shipyard") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    found = []
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match is None:
            continue
        name = re.sub(r"[-.]+", "_", match.group(1)).lower()
        if _IMPORT_NAMES.get(name, name) == top and match.group(2) not in found:
            found.append(match.group(2))
    return sorted(found)


def missing_dependency(error: ModuleNotFoundError) -> MissingExtra | None:
    """A user error naming the install command, when the missing module comes from one of our extras."""
    extras = extras_providing(error.name or "")
    if not extras:
        return None
    command = f"uv sync --extra {extras[0]}"
    return MissingExtra(
        f"'{error.name}' is not installed; it comes with shipyard's {' or '.join(extras)} extra",
        hint=f"run `make install` (every plane), or `{command}` (pip: pip install 'shipyard[{extras[0]}]')",
    )
