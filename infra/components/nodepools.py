"""Node pools: EKS managed node groups from the stack's config, each on an IMDSv2-only launch template.

GPU pools carry the ``nvidia.com/gpu=true:NoSchedule`` taint (only pods that ask for GPUs land
there), the accelerator label, and a maximum: the stack's config check refuses a GPU pool
without one and a set of pools that could exceed the stack's GPU ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.common import child, tags
from shipyard.planes.infra.prices import accelerator_of
from shipyard.planes.infra.stack import NodePool
from shipyard.sdk.kubernetes import GPU_TAINT, POOL_LABEL


@dataclass(frozen=True)
class NodePoolsArgs:
    cluster_name: pulumi.Input[str]
    node_role_arn: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    pools: list[NodePool]
    kms_key_arn: pulumi.Input[str]
    env: str
    cost_center: str


class NodePools(pulumi.ComponentResource):
    """Outputs: ``node_groups`` (pool name → node group name)."""

    def __init__(self, name: str, args: NodePoolsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipyard:infra:NodePools", name, None, opts)
        groups = {}
        for pool in args.pools:
            tagged = tags(args.env, args.cost_center, **{POOL_LABEL: pool.name})
            template = aws.ec2.LaunchTemplate(
                f"{name}-{pool.name}",
                metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                    http_endpoint="enabled",
                    http_tokens="required",  # IMDSv2 only
                    http_put_response_hop_limit=1,  # pods cannot reach the node's credentials; they use IRSA
                ),
                block_device_mappings=[
                    aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                        device_name="/dev/xvda",
                        ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                            volume_size=pool.disk_gib,
                            volume_type="gp3",
                            encrypted="true",
                            kms_key_id=args.kms_key_arn,
                            delete_on_termination="true",
                        ),
                    )
                ],
                network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(interface_type="efa", device_index=0)]
                if pool.efa
                else None,
                capacity_reservation_specification=aws.ec2.LaunchTemplateCapacityReservationSpecificationArgs(
                    capacity_reservation_target=aws.ec2.LaunchTemplateCapacityReservationSpecificationCapacityReservationTargetArgs(
                        capacity_reservation_id=pool.capacity_reservation_id
                    )
                )
                if pool.capacity_reservation_id
                else None,
                tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="instance", tags=tagged)],
                tags=tagged,
                opts=child(self),
            )
            labels = {POOL_LABEL: pool.name, **pool.labels}
            accelerator = accelerator_of(pool.instance_types[0])
            if pool.is_gpu and accelerator:
                labels["shipyard.dev/accelerator"] = accelerator
            group = aws.eks.NodeGroup(
                f"{name}-{pool.name}",
                cluster_name=args.cluster_name,
                node_group_name=pool.name,
                node_role_arn=args.node_role_arn,
                subnet_ids=args.subnet_ids,
                instance_types=pool.instance_types,
                capacity_type=pool.capacity,
                ami_type=pool.ami,
                scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                    min_size=pool.min,
                    max_size=pool.max if pool.max is not None else max(pool.min, 1),
                    desired_size=pool.desired if pool.desired is not None else pool.min,
                ),
                update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
                labels=labels,
                taints=[
                    aws.eks.NodeGroupTaintArgs(key=GPU_TAINT["key"], value=GPU_TAINT["value"], effect="NO_SCHEDULE")
                ]
                if pool.is_gpu
                else None,
                launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                    id=template.id, version=template.latest_version.apply(str)
                ),
                tags=tagged,
                # The autoscaler moves desired_size; Pulumi must not move it back on every run.
                opts=child(self, ignore_changes=["scalingConfig.desiredSize"]),
            )
            groups[pool.name] = group.node_group_name
        self.node_groups = groups
        self.register_outputs({"node_groups": groups})
