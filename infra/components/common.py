"""What every component shares: required tags and JSON policies built from outputs."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws


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


def service_trust(service: str, *actions: str) -> pulumi.Output[str]:
    """A trust policy letting one AWS service (eks.amazonaws.com, say) assume the role."""
    return policy(
        [{"Effect": "Allow", "Action": list(actions or ("sts:AssumeRole",)), "Principal": {"Service": service}}]
    )


def vpc_only_group(
    name: str, vpc_id: pulumi.Input[str], cidr: str, description: str, ports: list[tuple[int, int]], **more: Any
) -> aws.ec2.SecurityGroup:
    """A security group admitting TCP ``ports`` (from, to) from inside the VPC's range only; never 0.0.0.0/0."""
    ingress = [
        aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=a, to_port=b, cidr_blocks=[cidr]) for a, b in ports
    ]
    return aws.ec2.SecurityGroup(name, vpc_id=vpc_id, description=description, ingress=ingress, **more)
