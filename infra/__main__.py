"""The cloud layer of the Shipyard platform, one Pulumi stack per environment (Pulumi.<stack>.yaml).

Only wiring: each part of the architecture is a component in ``components/``; what a stack
decides is its ``shipyard:platform`` config, checked by ``shipyard.planes.infra.stack``.
"""

from pathlib import Path

import pulumi
import pulumi_aws as aws
from components.addons import Addons, AddonsArgs
from components.cluster import Cluster, ClusterArgs
from components.common import tags
from components.iam import Iam, IamArgs
from components.network import Network, NetworkArgs
from components.nodepools import NodePools, NodePoolsArgs
from components.registry import Registry, RegistryArgs
from components.storage import Storage, StorageArgs
from components.tenancy import Tenancy, TenancyArgs

from shipyard.planes.infra.stack import StackConfig, teams

ROOT = Path(__file__).resolve().parent.parent
config = StackConfig.model_validate(pulumi.Config("shipyard").require_object("platform"))
region = aws.config.region or "us-east-1"
env, cost_center = config.environment, config.cost_center
name = f"shipyard-{env}"

key = aws.kms.Key(
    name,
    description=f"Shipyard {env}: EKS secrets, S3, EBS, logs, RDS",
    enable_key_rotation=True,
    deletion_window_in_days=30,
    tags=tags(env, cost_center),
)
aws.kms.Alias(name, name=f"alias/{name}", target_key_id=key.key_id)

network = Network(
    "network",
    NetworkArgs(
        name, region, config.network.cidr, config.network.azs, config.network.nat == "perAz", env, cost_center, key.arn
    ),
)
cluster = Cluster(
    "cluster",
    ClusterArgs(
        name,
        config.cluster.kubernetes_version,
        network.private_subnet_ids,
        config.cluster.public_access_cidrs,
        key.arn,
        env,
        cost_center,
    ),
)
NodePools(
    "node-pools",
    NodePoolsArgs(
        cluster.name, cluster.node_role_arn, network.private_subnet_ids, config.node_pools, key.arn, env, cost_center
    ),
)
storage = Storage(
    "storage",
    StorageArgs(
        name,
        config.buckets,
        key.arn,
        env,
        cost_center,
        config.efs,
        config.fsx_lustre_gib,
        network.private_subnet_ids,
        network.vpc_id,
        config.network.cidr,
    ),
)
registry = Registry("registry", RegistryArgs(name, key.arn, env, cost_center))
iam = Iam(
    "iam",
    IamArgs(cluster, storage.bucket_arns, config.repository, env, cost_center, registry.runtime_repository_arn),
)
addons = Addons(
    "addons",
    AddonsArgs(
        cluster.kubeconfig,
        config.addons,
        iam.service_roles,
        storage.buckets,
        network.vpc_id,
        config.network.cidr,
        network.private_subnet_ids,
        key.arn,
        env,
        cost_center,
    ),
)
tenancy = Tenancy("tenancy", TenancyArgs(teams(ROOT), addons.provider, cluster, storage.bucket_arns, env))

pulumi.export("cluster_name", cluster.name)
pulumi.export("kubeconfig", pulumi.Output.secret(cluster.kubeconfig))
pulumi.export("buckets", storage.buckets)
pulumi.export("stateBucket", storage.buckets["state"])  # spec.state.bucket of this environment
pulumi.export("ci_role_arn", iam.ci_role_arn)
# For the workflows' role-to-assume: deploy (apply jobs, GitHub Environment <env>), read (previews, plans, drift).
pulumi.export("ciDeployRoleArn", iam.ci_role_arn)
pulumi.export("ciReadRoleArn", iam.ci_read_role_arn)
# Where .github/workflows/image.yml pushes the runtime image; platform/runtime/images.yaml names it by digest.
pulumi.export("runtimeRepositoryUrl", registry.runtime_repository_url)
pulumi.export("team_roles", tenancy.team_roles)
