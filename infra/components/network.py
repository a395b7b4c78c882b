"""Network: a VPC with public and private subnets in every AZ, NAT, VPC endpoints and flow logs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.common import child, policy, service_trust, tags, vpc_only_group


@dataclass(frozen=True)
class NetworkArgs:
    name: str
    region: str
    cidr: str
    azs: list[str]
    nat_per_az: bool
    env: str
    cost_center: str
    kms_key_arn: pulumi.Input[str]


class Network(pulumi.ComponentResource):
    """Outputs: ``vpc_id``, ``private_subnet_ids`` (nodes, endpoints, databases), ``public_subnet_ids`` (NAT and
    load balancers only), ``cidr``."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipyard:infra:Network", name, None, opts)
        tagged = tags(args.env, args.cost_center)
        vpc = aws.ec2.Vpc(
            name,
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tagged | {"Name": name},
            opts=child(self),
        )
        # The range splits in eight equal blocks: one public and one private per AZ (up to four AZs).
        blocks = list(ipaddress.ip_network(args.cidr).subnets(new_prefix=ipaddress.ip_network(args.cidr).prefixlen + 3))
        igw = aws.ec2.InternetGateway(name, vpc_id=vpc.id, tags=tagged, opts=child(self))
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            tags=tagged | {"Name": f"{name}-public"},
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            opts=child(self),
        )
        public, private, private_routes = [], [], []
        nat_ids: list[pulumi.Output[str]] = []
        for index, az in enumerate(args.azs):
            pub = aws.ec2.Subnet(
                f"{name}-public-{az}",
                vpc_id=vpc.id,
                availability_zone=az,
                cidr_block=str(blocks[2 * index]),
                map_public_ip_on_launch=False,  # nothing gets a public IP by accident
                tags=tagged | {"Name": f"{name}-public-{az}", "kubernetes.io/role/elb": "1"},
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{az}", subnet_id=pub.id, route_table_id=public_routes.id, opts=child(self)
            )
            priv = aws.ec2.Subnet(
                f"{name}-private-{az}",
                vpc_id=vpc.id,
                availability_zone=az,
                cidr_block=str(blocks[2 * index + 1]),
                tags=tagged | {"Name": f"{name}-private-{az}", "kubernetes.io/role/internal-elb": "1"},
                opts=child(self),
            )
            if args.nat_per_az or index == 0:  # prod: one per AZ survives an AZ outage; dev: one shared
                eip = aws.ec2.Eip(f"{name}-nat-{az}", domain="vpc", tags=tagged, opts=child(self))
                nat = aws.ec2.NatGateway(
                    f"{name}-nat-{az}", allocation_id=eip.id, subnet_id=pub.id, tags=tagged, opts=child(self)
                )
                nat_ids.append(nat.id)
            routes = aws.ec2.RouteTable(
                f"{name}-private-{az}",
                vpc_id=vpc.id,
                tags=tagged | {"Name": f"{name}-private-{az}"},
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_ids[-1])],
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{az}", subnet_id=priv.id, route_table_id=routes.id, opts=child(self)
            )
            public.append(pub)
            private.append(priv)
            private_routes.append(routes)

        # S3 through a gateway endpoint (free, stays on the AWS network); ECR and STS through interface endpoints.
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[r.id for r in private_routes],
            tags=tagged,
            opts=child(self),
        )
        endpoints = vpc_only_group(
            f"{name}-endpoints",
            vpc.id,
            args.cidr,
            "HTTPS from inside the VPC to interface endpoints",
            [(443, 443)],
            tags=tagged,
            opts=child(self),
        )
        for service in ("ecr.api", "ecr.dkr", "sts"):
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=vpc.id,
                vpc_endpoint_type="Interface",
                service_name=f"com.amazonaws.{args.region}.{service}",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in private],
                security_group_ids=[endpoints.id],
                tags=tagged,
                opts=child(self),
            )

        logs = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs", retention_in_days=90, kms_key_id=args.kms_key_arn, tags=tagged, opts=child(self)
        )
        writer = aws.iam.Role(
            f"{name}-flow-logs",
            assume_role_policy=service_trust("vpc-flow-logs.amazonaws.com"),
            tags=tagged,
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=writer.id,
            policy=policy(
                [
                    {
                        "Effect": "Allow",
                        "Resource": logs.arn.apply(lambda arn: f"{arn}:*"),
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    }
                ]
            ),
            opts=child(self),
        )
        aws.ec2.FlowLog(
            name,
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=logs.arn,
            iam_role_arn=writer.arn,
            tags=tagged,
            opts=child(self),
        )

        self.vpc_id = vpc.id
        self.cidr = args.cidr
        self.private_subnet_ids = [s.id for s in private]
        self.public_subnet_ids = [s.id for s in public]
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )
