"""Cluster add-ons, as Helm releases on the new cluster: the NVIDIA device plugin, cert-manager, KServe, Kubeflow
Pipelines, MLflow (on RDS PostgreSQL, artifacts in S3) and the Feast feature server; chart versions from config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.common import child, tags, vpc_only_group
from shipyard.planes.infra.stack import Addons as Versions
from shipyard.sdk.kubernetes import GPU_TAINT

#: add-on → (chart, repository, namespace)
CHARTS = {
    "nvidia-device-plugin": ("nvidia-device-plugin", "https://nvidia.github.io/k8s-device-plugin", "kube-system"),
    "cert-manager": ("cert-manager", "https://charts.jetstack.io", "cert-manager"),
    "kserve": ("oci://ghcr.io/kserve/charts/kserve", None, "kserve"),
    "kubeflow-pipelines": ("kubeflow-pipelines", "https://charts.kubeflow.org", "kubeflow"),
    "mlflow": ("mlflow", "https://community-charts.github.io/helm-charts", "mlflow"),
    "feast-feature-server": ("feast-feature-server", "https://feast-helm-charts.storage.googleapis.com", "feast"),
}


@dataclass(frozen=True)
class AddonsArgs:
    kubeconfig: pulumi.Input[str]
    versions: Versions
    service_roles: dict[str, pulumi.Output[str]]
    buckets: dict[str, pulumi.Output[str]]
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    subnet_ids: list[pulumi.Output[str]]
    kms_key_arn: pulumi.Input[str]
    env: str
    cost_center: str


class Addons(pulumi.ComponentResource):
    """Outputs: ``provider`` (the cluster's Kubernetes provider, for tenancy), ``mlflow_database`` (endpoint)."""

    def __init__(self, name: str, args: AddonsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipyard:infra:Addons", name, None, opts)
        tagged = tags(args.env, args.cost_center)
        self.provider = k8s.Provider(name, kubeconfig=args.kubeconfig, opts=child(self))
        database = self._mlflow_database(name, args, tagged)
        versions = args.versions
        irsa = "eks.amazonaws.com/role-arn"
        values: dict[str, dict[str, Any]] = {
            "nvidia-device-plugin": {"tolerations": [GPU_TAINT | {"effect": "NoSchedule"}]},
            "cert-manager": {"crds": {"enabled": True}},
            "kserve": {
                "kserve": {"controller": {"deploymentMode": "Serverless"}},
                "serviceAccount": {"annotations": {irsa: args.service_roles["kserve"]}},
            },
            "kubeflow-pipelines": {
                "serviceAccount": {"annotations": {irsa: args.service_roles["kfp"]}},
                "objectStore": {"bucket": args.buckets["datasets"], "secure": True},
            },
            "mlflow": {
                "serviceAccount": {"annotations": {irsa: args.service_roles["mlflow"]}},
                "backendStore": {
                    "databaseMigration": True,
                    "postgres": {
                        "enabled": True,
                        "host": database.address,
                        "port": 5432,
                        "database": "mlflow",
                        # synced from the RDS-managed secret: never in git or in the state
                        "existingSecret": "mlflow-database",
                    },
                },
                "artifactRoot": {"s3": {"enabled": True, "bucket": args.buckets["mlflow"], "path": "artifacts"}},
            },
            "feast-feature-server": {"serviceAccount": {"annotations": {irsa: args.service_roles["feast"]}}},
        }
        chart_versions = {
            "nvidia-device-plugin": versions.nvidia_device_plugin,
            "cert-manager": versions.cert_manager,
            "kserve": versions.kserve,
            "kubeflow-pipelines": versions.kubeflow_pipelines,
            "mlflow": versions.mlflow,
            "feast-feature-server": versions.feast_feature_server,
        }
        releases: dict[str, k8s.helm.v3.Release] = {}
        for addon, (chart, repository, namespace) in CHARTS.items():
            after = [releases["cert-manager"]] if addon == "kserve" else []  # KServe's webhooks need certificates
            releases[addon] = k8s.helm.v3.Release(
                f"{name}-{addon}",
                name=addon,
                chart=chart,
                version=chart_versions[addon],
                namespace=namespace,
                create_namespace=True,
                atomic=True,
                timeout=900,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repository) if repository else None,
                values=values[addon],
                opts=child(self, provider=self.provider, depends_on=after),
            )
        self.mlflow_database = database.address
        self.register_outputs({"mlflow_database": self.mlflow_database})

    def _mlflow_database(self, name: str, args: AddonsArgs, tagged: dict[str, str]) -> aws.rds.Instance:
        """PostgreSQL for MLflow's backend store: private, encrypted, password kept by RDS in Secrets Manager."""
        subnets = aws.rds.SubnetGroup(f"{name}-mlflow", subnet_ids=args.subnet_ids, tags=tagged, opts=child(self))
        access = vpc_only_group(
            f"{name}-mlflow-db",
            args.vpc_id,
            args.vpc_cidr,
            "PostgreSQL from inside the VPC only",
            [(5432, 5432)],
            tags=tagged,
            opts=child(self),
        )
        prod = args.env == "prod"
        return aws.rds.Instance(
            f"{name}-mlflow",
            engine="postgres",
            engine_version="16",
            db_name="mlflow",
            username="mlflow",
            instance_class="db.m7g.large" if prod else "db.t4g.medium",
            allocated_storage=100 if prod else 20,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=args.kms_key_arn,
            manage_master_user_password=True,  # RDS generates and rotates it in Secrets Manager
            iam_database_authentication_enabled=True,
            publicly_accessible=False,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[access.id],
            multi_az=prod,
            backup_retention_period=14 if prod else 3,
            deletion_protection=prod,
            skip_final_snapshot=not prod,
            final_snapshot_identifier=f"{name}-mlflow-final" if prod else None,
            tags=tagged,
            opts=child(self),
        )
