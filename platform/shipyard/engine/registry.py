"""Discovers plugins through the ``shipyard.plugins`` entry points and collects what they provide."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from typing import Any

import click
import pluggy

from shipyard.core.plan import PlaneRules
from shipyard.sdk import hookspecs
from shipyard.sdk.errors import PluginError, UserError
from shipyard.sdk.kinds import Kind
from shipyard.sdk.planes import LocalService, Plane, Policy

ENTRY_POINT_GROUP = "shipyard.plugins"
_PREFIX = "shipyard_"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str
    version: str
    kinds: tuple[str, ...]
    planes: tuple[str, ...]
    policies: tuple[str, ...]
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class Registry:
    """Everything the installed plugins contribute, checked for clashes."""

    kinds: Mapping[str, Kind]
    planes: tuple[Plane, ...]
    policies: tuple[Policy, ...]
    services: tuple[LocalService, ...]
    plugins: tuple[PluginInfo, ...]
    commands: tuple[click.Command, ...] = ()
    installed: tuple[Plane, ...] = ()  # every installed plane, also when ``planes`` is narrowed

    @property
    def providers(self) -> tuple[Plane, ...]:
        """The installed planes, for the SDK services one plane offers another (``ctx.provider``)."""
        return self.installed or self.planes

    @property
    def rules(self) -> PlaneRules:
        return {p.name: (p.order, p.ignored_fields) for p in self.planes}

    def only(self, planes: Sequence[str]) -> Registry:
        """This registry narrowed to ``planes`` (all of them when empty), e.g. to plan one plane of an environment."""
        if not planes:
            return self
        known = {p.name for p in self.planes}
        unknown = sorted(set(planes) - known)
        if unknown:
            raise UserError(f"unknown plane '{unknown[0]}'", hint="planes: " + ", ".join(sorted(known)))
        return replace(self, planes=tuple(p for p in self.planes if p.name in planes), installed=self.providers)

    def plane(self, name: str) -> Plane:
        for plane in self.planes:
            if plane.name == name:
                return plane
        raise UserError(f"no plane '{name}' is installed", hint="planes: " + ", ".join(p.name for p in self.planes))


class _Manager(pluggy.PluginManager):
    """Treats every ``shipyard_*`` function as a hook, marked or not, so typos are caught."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(_PREFIX) and inspect.isroutine(getattr(plugin, name, None)):
            return {}
        return opts


def discover(extra: Sequence[tuple[str, object]] = ()) -> Registry:
    """Load installed plugins (and ``extra`` ones, for tests) into a Registry.

    The installed plugins are loaded once per process: planes keep no state between plans
    (what they read is pinned into each plan), so one set of planes, and the worker processes
    they started, serves every command a process runs.
    """
    return _load(extra) if extra else _installed()


@functools.cache
def _installed() -> Registry:
    return _load(())


def _load(extra: Sequence[tuple[str, object]]) -> Registry:
    manager = _Manager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    origins: dict[str, tuple[str, str]] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = (ep.dist.name, ep.dist.version) if ep.dist else ("?", "?")
        try:
            plugin = ep.load()
        except Exception as error:
            raise PluginError(
                f"plugin '{ep.name}' from {dist[0]} {dist[1]} failed to load: {error}",
                hint=f"fix or uninstall {dist[0]}",
            ) from error
        _register(manager, ep.name, plugin)
        origins[ep.name] = dist
    for name, plugin in extra:
        _register(manager, name, plugin)
        origins[name] = ("(in-process)", "")
    _reject_unknown_hooks(manager, origins)
    return _collect(manager, origins)


def _register(manager: _Manager, name: str, plugin: object) -> None:
    try:
        manager.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as error:
        raise PluginError(f"plugin '{name}' cannot be registered: {error}") from error


def _reject_unknown_hooks(manager: _Manager, origins: Mapping[str, tuple[str, str]]) -> None:
    known = sorted(n for n in vars(hookspecs) if n.startswith(_PREFIX))
    for hook_name in sorted(vars(manager.hook)):
        caller = getattr(manager.hook, hook_name)
        if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            close = difflib.get_close_matches(hook_name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "known hooks: " + ", ".join(known)
            dist = origins.get(impl.plugin_name, ("?", "?"))[0]
            raise PluginError(f"plugin '{impl.plugin_name}' ({dist}) implements unknown hook '{hook_name}'", hint=hint)


def _collect(manager: _Manager, origins: Mapping[str, tuple[str, str]]) -> Registry:
    kinds: dict[str, Kind] = {}
    planes: dict[str, Plane] = {}
    policies: dict[str, Policy] = {}
    services: dict[str, LocalService] = {}
    commands: dict[str, click.Command] = {}
    contributed: dict[str, dict[str, list[str]]] = {name: {} for name in origins}

    def gather(hook: str, into: dict[str, Any], name_of: Any, what: str) -> None:
        # Each plugin's implementation is called on its own so results can be attributed.
        for impl in getattr(manager.hook, hook).get_hookimpls():
            for item in impl.function() or ():
                name = name_of(item)
                if name in into:
                    raise PluginError(f"{what} '{name}' is defined twice (again by plugin '{impl.plugin_name}')")
                into[name] = item
                contributed[impl.plugin_name].setdefault(what, []).append(name)

    gather("shipyard_kinds", kinds, lambda k: k.name, "kind")
    gather("shipyard_planes", planes, lambda p: p.name, "plane")
    gather("shipyard_policies", policies, lambda p: p.id, "policy")
    gather("shipyard_local_services", services, lambda s: s.name, "local service")
    gather("shipyard_commands", commands, lambda c: c.name, "command")
    infos = tuple(
        PluginInfo(
            name,
            *origins[name],
            kinds=tuple(contributed[name].get("kind", ())),
            planes=tuple(contributed[name].get("plane", ())),
            policies=tuple(contributed[name].get("policy", ())),
            commands=tuple(contributed[name].get("command", ())),
        )
        for name in origins
    )
    return Registry(
        kinds=kinds,
        planes=tuple(sorted(planes.values(), key=lambda p: (p.order, p.name))),
        policies=tuple(policies.values()),
        services=tuple(services.values()),
        plugins=infos,
        commands=tuple(commands.values()),
    )
