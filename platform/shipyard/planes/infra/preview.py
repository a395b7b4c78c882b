"""The adapter to a deployed stack: ``pulumi preview`` through the Automation API.

Against a deployed stack only the engine's own preview tells the truth. It runs the
program with the real providers, so an input built from another resource's output holds
the real value (or "known after apply"); under the mocks it would hold a made-up id and
read as a change. Each step of the preview carries the resource as deployed (``old``) and
as the update would leave it (``new``). ``Preview`` keeps both sides, and the plane plans
one against the other, field by field.

The preview also saves Pulumi's update plan (``--save-plan``): it goes into Shipyard's plan,
and ``up`` applies exactly that update plan (``pulumi up --plan``), which refuses any
operation the reviewed preview did not show. Pulumi does not check that the stack still
starts where the preview saw it; Shipyard's apply does (the plan's observed fingerprint).

Needs the Pulumi CLI, a backend login and cloud credentials, so ``run`` and ``up`` are
exercised only where they exist (CI's deploy job, an SRE's laptop). Here ``steps`` is tested
on events in the engine's JSON, and ``run`` and ``up`` prove they say clearly what is missing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pulumi.automation import EngineEvent, OpType, StepEventStateMetadata
from pulumi.runtime.rpc import UNKNOWN  # the wire value of an input waiting on an output not known yet

from shipyard.sdk import ApplyError, TargetUnavailable

KNOWN_AFTER_APPLY = "(known after apply)"

# Refresh steps come first in `preview --refresh`; the update steps after them already
# start from the refreshed state. Reads are resources looked up with `.get()`, not managed.
_NOT_PLANNED = {OpType.REFRESH, OpType.READ, OpType.READ_REPLACEMENT}
# Steps whose `new` side is not what the update leaves behind.
_GONE = {OpType.DELETE, OpType.DELETE_REPLACED, OpType.DISCARD, OpType.DISCARD_REPLACED, OpType.REMOVE_PENDING_REPLACE}


@dataclass(frozen=True)
class Preview:
    """One stack's resources in the shape ``resource_of`` reads: as the update leaves them, and as deployed."""

    proposed: list[dict[str, Any]]
    deployed: list[dict[str, Any]]
    update_plan: dict[str, Any] = field(default_factory=dict)  # what `pulumi preview --save-plan` saved


def run(root: Path, stack: str) -> Preview:
    """``pulumi preview --refresh --save-plan`` of ``stack``, read from its step events and its saved plan."""
    _need_cli(f"reading stack '{stack}'", stack)
    from pulumi import automation

    seen: list[EngineEvent] = []
    with tempfile.TemporaryDirectory(prefix="shipyard-pulumi-") as scratch:
        saved = Path(scratch) / "update-plan.json"
        try:
            workspace = automation.select_stack(stack_name=stack, work_dir=str(root))
            workspace.preview(
                on_event=seen.append, refresh=True, plan=str(saved), color="never", suppress_progress=True
            )
        except automation.errors.CommandError as error:
            raise TargetUnavailable(
                f"pulumi could not preview stack '{stack}': {str(error).strip().splitlines()[-1]}",
                hint="check `pulumi login` and the cloud credentials (AWS_PROFILE or the CI role)",
            ) from error
        return replace(steps(seen), update_plan=json.loads(saved.read_text(encoding="utf-8")))


def up(root: Path, stack: str, update_plan: dict[str, Any]) -> None:
    """``pulumi up --plan``: apply exactly the update plan a reviewed preview saved."""
    _need_cli(f"applying stack '{stack}'", stack)
    from pulumi import automation

    with tempfile.TemporaryDirectory(prefix="shipyard-pulumi-") as scratch:
        saved = Path(scratch) / "update-plan.json"
        saved.write_text(json.dumps(update_plan), encoding="utf-8")
        try:
            workspace = automation.select_stack(stack_name=stack, work_dir=str(root))
            workspace.up(plan=str(saved), color="never", suppress_progress=True)
        except automation.errors.CommandError as error:
            raise ApplyError(
                f"pulumi up refused or failed the reviewed update plan of stack '{stack}': "
                f"{str(error).strip().splitlines()[-1]}",
                hint="an operation outside the reviewed plan is refused: plan again, review, apply",
            ) from error


def _need_cli(doing: str, stack: str) -> None:
    if shutil.which("pulumi") is None:
        raise TargetUnavailable(
            f"{doing} needs the Pulumi CLI, which is not installed here",
            hint=f"install it (https://www.pulumi.com/docs/install/) and `pulumi login`; or review infra changes "
            f"offline: shipyard plan --target base:origin/main --env {stack}, or plan the other planes with --plane",
        )


def steps(events: Iterable[EngineEvent]) -> Preview:
    """Both sides of a preview from its events, each keyed by URN (a replacement's several steps name one URN)."""
    proposed: dict[str, dict[str, Any]] = {}
    deployed: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.resource_pre_event is None:
            continue
        step = event.resource_pre_event.metadata
        if step.op in _NOT_PLANNED or not _managed(step.type, step.urn):
            continue
        if step.old is not None:
            deployed[step.urn] = _state(step.old)
        if step.new is not None and step.op not in _GONE:
            proposed[step.urn] = _state(step.new)
    return Preview(list(proposed.values()), list(deployed.values()))


def _managed(kind: str, urn: str) -> bool:
    """Not the stack itself, nor the providers the engine makes by default (the mocks never see those either)."""
    if kind == "pulumi:pulumi:Stack":
        return False
    return not (kind.startswith("pulumi:providers:") and urn.rpartition("::")[2].startswith("default"))


def _state(state: StepEventStateMetadata) -> dict[str, Any]:
    return {"urn": state.urn, "type": state.type, "parent": state.parent, "inputs": _known(state.inputs or {})}


def _known(value: Any) -> Any:
    if value == UNKNOWN:
        return KNOWN_AFTER_APPLY
    if isinstance(value, dict):
        return {key: _known(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_known(item) for item in value]
    return value
