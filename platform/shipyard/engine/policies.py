"""The rules in force for a repository: the planes' and plugins' (the ``shipyard_policies`` hook) and the
repository's own, every ``policies/*.py`` module, loaded as a plugin without an entry point.

A repository rule is a ``Policy`` at a module's top level, usually made with ``shipyard.sdk.rule``.
Modules whose name starts with ``_`` are not rule modules (``policies/__main__.py`` is the
Pulumi CrossGuard pack's entry point). A module that fails to import, or a rule id defined
twice, is an error naming the file and line: nothing is planned or applied without the rules.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.engine.registry import Registry
from shipyard.sdk.errors import PluginError, SpecError
from shipyard.sdk.files import linked
from shipyard.sdk.planes import Policy

FOLDER = "policies"
BUILT_IN = "shipyard"  # the distribution of the built-in planes


@dataclass(frozen=True)
class Rules:
    """Every rule in force, and where each comes from: ``built-in``, ``repository (policies/x.py)`` or
    ``plugin <distribution>``."""

    policies: tuple[Policy, ...]
    origins: Mapping[str, str]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(p.id for p in self.policies)


def rules_in_force(registry: Registry, root: Path) -> Rules:
    origins: dict[str, str] = {}
    for plugin in registry.plugins:
        for policy_id in plugin.policies:
            origins[policy_id] = "built-in" if plugin.distribution == BUILT_IN else f"plugin {plugin.distribution}"
    policies = list(registry.policies)
    for policy, file in repository_policies(root):
        if policy.id in origins:
            code = getattr(policy.check, "__code__", None)
            raise PluginError(
                f"{file}:{code.co_firstlineno if code else 1}: rule {policy.id} is defined twice "
                f"(also by {origins[policy.id]})",
                hint="a rule id is stable forever: give the new rule the next free number of its area",
            )
        origins[policy.id] = f"repository ({file})"
        policies.append(policy)
    return Rules(tuple(policies), origins)


def repository_policies(root: Path) -> list[tuple[Policy, str]]:
    """The rules ``policies/*.py`` define, with the file each is in."""
    found: list[tuple[Policy, str]] = []
    for path in sorted((root / FOLDER).glob("*.py")):
        if path.name.startswith("_"):
            continue
        display = path.relative_to(root).as_posix()
        link = linked(root, path)
        if link is not None:
            raise SpecError([link])
        module = _load(path, display)
        found += [(value, display) for value in vars(module).values() if isinstance(value, Policy)]
    return found


def _load(path: Path, display: str) -> object:
    name = f"shipyard_repository_policies.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing resolve names through it
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(name, None)
        line = error.lineno if isinstance(error, SyntaxError) else _line_in(error, path)
        raise PluginError(
            f"{display}:{line or 1}: the rule module failed to import: {type(error).__name__}: {error}",
            hint="fix the module; no rule runs, and nothing is planned or applied, until it imports",
        ) from error
    return module


def _line_in(error: BaseException, path: Path) -> int | None:
    """The line of ``path`` the error was raised from (its deepest frame in that file)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == path]
    return frames[-1].lineno if frames else None
