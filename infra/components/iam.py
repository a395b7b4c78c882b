"""IAM: IRSA roles for the platform's services, each limited to its own buckets and prefixes, and two roles for
this repository's GitHub Actions (OIDC, no stored keys): the deploy role, which only a job of the stack's own
GitHub Environment can assume (the apply jobs: `environment: <env>`), and a read-only role for pull-request
previews and the plans and drift checks on main."""

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


#: AWS managed policies a read-only role may carry (SY-AWS-020 holds the read role to them).
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
#: What pushing an image to one repository takes (the token is account-wide; the rest is the repository's).
ECR_PUSH = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]


def github_trust(provider: pulumi.Input[str], subjects: list[str]) -> pulumi.Output[str]:
    """A trust policy for GitHub's OIDC tokens of exactly these subjects (aud and sub pinned, no wildcard)."""
    return policy(
        [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Principal": {"Federated": provider},
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC}:sub": subjects[0] if len(subjects) == 1 else subjects,
                    }
                },
            }
        ]
    )


@dataclass(frozen=True)
class IamArgs:
    cluster: Cluster
    bucket_arns: dict[str, pulumi.Output[str]]
    repository: str
    env: str
    cost_center: str
    #: The ECR repository of the platform runtime image, which the deploy role may push to.
    runtime_repository_arn: pulumi.Input[str]


class Iam(pulumi.ComponentResource):
    """Outputs: ``service_roles`` (service → role ARN), ``ci_role_arn`` (deploy), ``ci_read_role_arn``."""

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
        # A job that names a GitHub Environment gets the subject repo:<repository>:environment:<env>, and only
        # that environment's protection rules (reviewers, branches) let a job name it.
        ci = aws.iam.Role(
            f"{name}-ci-deploy",
            description=f"GitHub Actions deploys from {args.repository} (GitHub Environment {args.env} only)",
            max_session_duration=3600,
            assume_role_policy=github_trust(github.arn, [f"repo:{args.repository}:environment:{args.env}"]),
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
        # The runtime image (platform/runtime/Dockerfile) is pushed by the deploy role, to its repository only.
        aws.iam.RolePolicy(
            f"{name}-ci-deploy-runtime-image",
            role=ci.id,
            opts=child(ci),
            policy=policy(
                [
                    {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                    {"Effect": "Allow", "Action": ECR_PUSH, "Resource": args.runtime_repository_arn},
                ]
            ),
        )
        self.ci_role_arn = ci.arn

        # Pull-request previews (pulumi preview, shipyard plan) and the plans and drift checks on main: read only.
        read = aws.iam.Role(
            f"{name}-ci-read",
            description=f"GitHub Actions previews and drift checks of {args.repository} (read only)",
            max_session_duration=3600,
            assume_role_policy=github_trust(
                github.arn, [f"repo:{args.repository}:pull_request", f"repo:{args.repository}:ref:refs/heads/main"]
            ),
            tags=tagged,
            opts=child(self),
        )
        aws.iam.RolePolicyAttachment(f"{name}-ci-read", role=read.name, policy_arn=READ_ONLY, opts=child(read))
        # The apply state (last-applied record, journal) that plan and drift read: SSE-KMS, so decrypting it
        # too, but only for objects of that bucket (the S3 bucket key's encryption context is the bucket).
        state = args.bucket_arns["state"]
        aws.iam.RolePolicy(
            f"{name}-ci-read-state",
            role=read.id,
            opts=child(read),
            policy=policy(
                [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                        "Resource": state.apply(lambda arn: f"{arn}/*"),
                    },
                    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": state},
                    {
                        "Effect": "Allow",
                        "Action": "kms:Decrypt",
                        "Resource": "*",
                        "Condition": {
                            "StringLike": {"kms:ViaService": "s3.*.amazonaws.com"},
                            "StringEquals": {"kms:EncryptionContext:aws:s3:arn": state},
                        },
                    },
                ]
            ),
        )
        self.ci_read_role_arn = read.arn
        self.register_outputs(
            {
                "service_roles": self.service_roles,
                "ci_role_arn": self.ci_role_arn,
                "ci_read_role_arn": self.ci_read_role_arn,
            }
        )
