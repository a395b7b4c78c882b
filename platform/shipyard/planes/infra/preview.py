"""The adapter to a real stack: ``pulumi preview`` through the Automation API (needs the Pulumi CLI and credentials).

Exercised only where the CLI and a cloud account exist (CI's deploy job, an SRE's laptop):
this machine has neither, so here it only proves it says so clearly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from shipyard.planes.infra import resource_of
from shipyard.sdk import Resource, TargetUnavailable


def preview(root: Path, stack: str) -> list[Resource]:
    """The stack's resources as deployed: its state, read through the Automation API (``pulumi stack export``)."""
    if shutil.which("pulumi") is None:
        raise TargetUnavailable(
            f"reading stack '{stack}' needs the Pulumi CLI, which is not installed here",
            hint=f"install it (https://www.pulumi.com/docs/install/) and `pulumi login`; or review infra changes "
            f"offline: shipyard plan --target base:origin/main --env {stack}, or plan the other planes with --plane",
        )
    from pulumi import automation

    try:
        workspace = automation.select_stack(stack_name=stack, work_dir=str(root))
        state = workspace.export_stack().deployment or {}
    except automation.errors.CommandError as error:
        raise TargetUnavailable(
            f"pulumi could not open stack '{stack}': {str(error).strip().splitlines()[-1]}",
            hint="check `pulumi login` and the cloud credentials (AWS_PROFILE or the CI role)",
        ) from error
    return [resource_of(stack, item) for item in state.get("resources", []) if item["type"] != "pulumi:pulumi:Stack"]
