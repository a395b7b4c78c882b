"""What every component shares: required tags and JSON policies built from outputs."""

from __future__ import annotations

import json
from typing import Any

import pulumi


def tags(env: str, cost_center: str, team: str = "platform", **extra: str) -> dict[str, str]:
    """The tags every AWS resource carries: who pays (cost-center), who owns it (team), where (env)."""
    return {"team": team, "cost-center": cost_center, "env": env, "managed-by": "shipyard", **extra}


def policy(statements: list[dict[str, Any]]) -> pulumi.Output[str]:
    """An IAM policy document; statements may hold Outputs (ARNs, the OIDC issuer)."""
    return pulumi.Output.from_input({"Version": "2012-10-17", "Statement": statements}).apply(
        lambda document: json.dumps(document, sort_keys=True)
    )


def child(parent: pulumi.Resource, **more: Any) -> pulumi.ResourceOptions:
    """Options for a component's child: parented, so names and the graph read like the architecture."""
    return pulumi.ResourceOptions(parent=parent, **more)
