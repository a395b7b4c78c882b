"""Cluster: EKS with a private API endpoint, KMS-encrypted secrets, control-plane logs, IRSA and managed add-ons."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.common import child, policy, service_trust, tags

LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
MANAGED_ADDONS = ["vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver"]


@dataclass(frozen=True)
class ClusterArgs:
    name: str
    kubernetes_version: str
    subnet_ids: list[pulumi.Output[str]]
    public_access_cidrs: list[str]
    kms_key_arn: pulumi.Input[str]
    env: str
    cost_center: str


class Cluster(pulumi.ComponentResource):
    """Outputs: ``name``, ``endpoint``, ``certificate_authority``, ``oidc_provider_arn``, ``oidc_issuer`` (host/path
    without https://, as IAM conditions name it), ``node_role_arn``, ``kubeconfig``."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipyard:infra:Cluster", name, None, opts)
        tagged = tags(args.env, args.cost_center)
        role = aws.iam.Role(
            f"{name}-control-plane",
            tags=tagged,
            opts=child(self),
            assume_role_policy=service_trust("eks.amazonaws.com", "sts:AssumeRole", "sts:TagSession"),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-control-plane",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child(self),
        )
        logs = aws.cloudwatch.LogGroup(
            f"{name}-control-plane",
            name=f"/aws/eks/{args.name}/cluster",  # the group EKS writes to; created first to set retention and KMS
            retention_in_days=90,
            kms_key_id=args.kms_key_arn,
            tags=tagged,
            opts=child(self),
        )
        public = bool(args.public_access_cidrs)
        cluster = aws.eks.Cluster(
            name,
            name=args.name,
            role_arn=role.arn,
            version=args.kubernetes_version,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=public,  # public only with an allow-list
                public_access_cidrs=args.public_access_cidrs if public else None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=args.kms_key_arn), resources=["secrets"]
            ),
            enabled_cluster_log_types=LOG_TYPES,
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=False
            ),
            tags=tagged,
            opts=child(self, depends_on=[logs]),
        )
        issuer_url = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-irsa", url=issuer_url, client_id_lists=["sts.amazonaws.com"], tags=tagged, opts=child(self)
        )
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer = issuer_url.apply(lambda url: url.removeprefix("https://"))

        nodes = aws.iam.Role(
            f"{name}-nodes",
            tags=tagged,
            opts=child(self),
            assume_role_policy=service_trust("ec2.amazonaws.com"),
        )
        for managed in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly", "AmazonEKS_CNI_Policy"):
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{managed}",
                role=nodes.name,
                policy_arn=f"arn:aws:iam::aws:policy/{managed}",
                opts=child(self),
            )
        self.node_role_arn = nodes.arn

        ebs_csi = self.service_role(
            f"{name}-ebs-csi",
            "kube-system",
            "ebs-csi-controller-sa",
            managed=("arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",),
            tagged=tagged,
        )
        for addon in MANAGED_ADDONS:
            aws.eks.Addon(
                f"{name}-{addon}",
                cluster_name=cluster.name,
                addon_name=addon,
                resolve_conflicts_on_update="OVERWRITE",
                service_account_role_arn=ebs_csi.arn if addon == "aws-ebs-csi-driver" else None,
                tags=tagged,
                opts=child(self),
            )

        self.name = cluster.name
        self.endpoint = cluster.endpoint
        self.certificate_authority = cluster.certificate_authority.apply(lambda ca: ca.data)
        self.kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, self.certificate_authority).apply(
            lambda parts: _kubeconfig(*parts)
        )
        self.register_outputs(
            {"name": self.name, "endpoint": self.endpoint, "oidc_provider_arn": self.oidc_provider_arn}
        )

    def service_role(
        self,
        name: str,
        namespace: str,
        account: str,
        *,
        tagged: dict[str, str],
        managed: tuple[str, ...] = (),
        inline: pulumi.Input[str] | None = None,
        parent: pulumi.Resource | None = None,
    ) -> aws.iam.Role:
        """An IRSA role only ``namespace/account`` on this cluster can assume (sub and aud pinned)."""
        trust = policy(
            [
                {
                    "Effect": "Allow",
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Principal": {"Federated": self.oidc_provider_arn},
                    "Condition": {
                        "StringEquals": self.oidc_issuer.apply(
                            lambda issuer: {
                                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{account}",
                                f"{issuer}:aud": "sts.amazonaws.com",
                            }
                        )
                    },
                }
            ]
        )
        role = aws.iam.Role(name, assume_role_policy=trust, tags=tagged, opts=child(parent or self))
        for arn in managed:
            aws.iam.RolePolicyAttachment(name, role=role.name, policy_arn=arn, opts=child(role))
        if inline is not None:
            aws.iam.RolePolicy(name, role=role.id, policy=inline, opts=child(role))
        return role


def _kubeconfig(name: str, endpoint: str, ca: str) -> str:
    """A kubeconfig that gets tokens from `aws eks get-token`: no long-lived credentials in the state."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": name,
            "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", name],
                        }
                    },
                }
            ],
        }
    )
