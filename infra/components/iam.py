"""IAM: IRSA roles for the platform's services, each limited to its own buckets and prefixes, and the CI deploy
role that only this repository's GitHub Actions runs on main can assume."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cluster import Cluster
from components.common import child, policy, tags

GITHUB_OIDC = "token.actions.githubusercontent.com"

#: service → (namespace, service account, {bucket purpose: (prefix, write?)})
SERVICES: dict[str, tuple[str, str, dict[str, tuple[str, bool]]]] = {
    "mlflow": ("mlflow", "mlflow", {"mlflow": ("artifacts/", True)}),
    "kfp": (
        "kubeflow",
        "pipeline-runner",
        {"datasets": ("", False), "mlflow": ("artifacts/", True), "models": ("", True)},
    ),
    "kserve": ("kserve", "kserve-controller", {"models": ("", False), "mlflow": ("artifacts/", False)}),
    "feast": ("feast", "feast-feature-server", {"feast": ("", True)}),
}


def bucket_access(
    bucket_arns: dict[str, pulumi.Output[str]], grants: dict[str, tuple[str, bool]]
) -> pulumi.Output[str]:
    """Read (and, where granted, write) on each bucket's prefix; listing only under that prefix."""
    statements = []
    for purpose, (prefix, write) in grants.items():
        arn = bucket_arns[purpose]
        actions = ["s3:GetObject", "s3:GetObjectVersion"] + (["s3:PutObject", "s3:DeleteObject"] if write else [])
        statements.append(
            {"Effect": "Allow", "Action": actions, "Resource": arn.apply(lambda a, p=prefix: f"{a}/{p}*")}
        )
        statements.append(
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            }
        )
    statements.append(
        {
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
        }
    )
    return policy(statements)


@dataclass(frozen=True)
class IamArgs:
    cluster: Cluster
    bucket_arns: dict[str, pulumi.Output[str]]
    repository: str
    env: str
    cost_center: str


class Iam(pulumi.ComponentResource):
    """Outputs: ``service_roles`` (service → role ARN), ``ci_role_arn``."""

    def __init__(self, name: str, args: IamArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipyard:infra:Iam", name, None, opts)
        tagged = tags(args.env, args.cost_center)
        self.service_roles: dict[str, pulumi.Output[str]] = {}
        for service, (namespace, account, grants) in SERVICES.items():
            role = args.cluster.service_role(
                f"{name}-{service}",
                namespace,
                account,
                tagged=tagged,
                inline=bucket_access(args.bucket_arns, grants),
                parent=self,
            )
            self.service_roles[service] = role.arn

        github = aws.iam.OpenIdConnectProvider(
            f"{name}-github",
            url=f"https://{GITHUB_OIDC}",
            client_id_lists=["sts.amazonaws.com"],
            tags=tagged,
            opts=child(self),
        )
        ci = aws.iam.Role(
            f"{name}-ci-deploy",
            description=f"GitHub Actions deploys from {args.repository} (main only)",
            max_session_duration=3600,
            assume_role_policy=policy(
                [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Principal": {"Federated": github.arn},
                        "Condition": {
                            "StringEquals": {
                                f"{GITHUB_OIDC}:aud": "sts.amazonaws.com",
                                f"{GITHUB_OIDC}:sub": f"repo:{args.repository}:ref:refs/heads/main",
                            }
                        },
                    }
                ]
            ),
            tags=tagged,
            opts=child(self),
        )
        # Deploying the stack needs broad rights, but never over IAM users or access keys.
        aws.iam.RolePolicyAttachment(
            f"{name}-ci-deploy", role=ci.name, policy_arn="arn:aws:iam::aws:policy/PowerUserAccess", opts=child(ci)
        )
        aws.iam.RolePolicy(
            f"{name}-ci-deploy-roles",
            role=ci.id,
            opts=child(ci),
            policy=policy(
                [
                    {
                        "Effect": "Allow",
                        "Resource": "*",
                        "Action": [
                            "iam:CreateRole",
                            "iam:DeleteRole",
                            "iam:GetRole",
                            "iam:TagRole",
                            "iam:PassRole",
                            "iam:PutRolePolicy",
                            "iam:DeleteRolePolicy",
                            "iam:GetRolePolicy",
                            "iam:AttachRolePolicy",
                            "iam:DetachRolePolicy",
                            "iam:ListAttachedRolePolicies",
                            "iam:ListRolePolicies",
                            "iam:CreateOpenIDConnectProvider",
                            "iam:GetOpenIDConnectProvider",
                            "iam:TagOpenIDConnectProvider",
                            "iam:UpdateAssumeRolePolicy",
                        ],
                    },
                    {"Effect": "Deny", "Resource": "*", "Action": ["iam:CreateUser", "iam:CreateAccessKey"]},
                ]
            ),
        )
        self.ci_role_arn = ci.arn
        self.register_outputs({"service_roles": self.service_roles, "ci_role_arn": self.ci_role_arn})
