"""The hooks a Shipyard plugin can implement. There are five, all called once at start-up.

A plugin is any object (usually a module) exposed in the ``shipyard.plugins``
entry-point group. Built-in planes are registered exactly the same way. Every
function whose name starts with ``shipyard_`` is treated as a hook
implementation, so a misspelled hook fails at start-up naming the plugin.

Each hook returns a list; pluggy collects one list per plugin and the engine
concatenates them. Names must be unique across all plugins (a kind, plane or
policy id claimed twice is a start-up error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from shipyard.sdk.kinds import Kind
    from shipyard.sdk.planes import LocalService, Plane, Policy

PROJECT = "shipyard"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def shipyard_kinds() -> list[Kind]:
    """Document kinds this plugin defines (``Team``, ``ModelDeployment``...).

    Called when specs are loaded. Results are concatenated across plugins.
    """
    raise NotImplementedError  # a specification; pluggy calls the implementations


@hookspec
def shipyard_planes() -> list[Plane]:
    """Planes this plugin provides; each computes desired Resources and applies Changes.

    Called when a plan is made. Results are concatenated and sorted by ``Plane.order``.
    """
    raise NotImplementedError  # a specification; pluggy calls the implementations


@hookspec
def shipyard_policies() -> list[Policy]:
    """Guardrails over specs and Resources.

    Called by ``validate`` (policies that need only specs) and ``plan`` (all).
    Results are concatenated; every policy runs.
    """
    raise NotImplementedError  # a specification; pluggy calls the implementations


@hookspec
def shipyard_local_services() -> list[LocalService]:
    """Processes the local embedded platform starts (MLflow, a model server...).

    Called by ``shipyard up``. Results are concatenated; names must be unique.
    """
    raise NotImplementedError  # a specification; pluggy calls the implementations


@hookspec
def shipyard_commands() -> list[click.Command]:
    """CLI verbs this plugin adds (``shipyard seed``, ``shipyard promote``...), as click commands.

    Called when the CLI starts. A command receives the session through ``@click.pass_obj``
    (``shipyard.sdk.commands.Session``: the repo root, the validated specs, a plane's context
    on a target). Results are concatenated; a name claimed twice, or one of the CLI's own
    verbs, is a start-up error.
    """
    raise NotImplementedError  # a specification; pluggy calls the implementations
