"""Storage: private, KMS-encrypted, versioned S3 buckets (datasets, MLflow artifacts, Feast offline store, models),
and optional EFS / FSx for Lustre for training data."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.common import child, policy, tags, vpc_only_group
from shipyard.planes.infra.stack import Bucket


@dataclass(frozen=True)
class StorageArgs:
    prefix: str
    buckets: list[Bucket]
    kms_key_arn: pulumi.Input[str]
    env: str
    cost_center: str
    efs: bool = False
    fsx_lustre_gib: int | None = None
    subnet_ids: list[pulumi.Output[str]] | None = None
    vpc_id: pulumi.Input[str] | None = None
    vpc_cidr: str = ""


class Storage(pulumi.ComponentResource):
    """Outputs: ``buckets`` (purpose → bucket name), ``bucket_arns`` (purpose → ARN)."""

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipyard:infra:Storage", name, None, opts)
        tagged = tags(args.env, args.cost_center)
        self.buckets: dict[str, pulumi.Output[str]] = {}
        self.bucket_arns: dict[str, pulumi.Output[str]] = {}
        for spec in args.buckets:
            key = f"{name}-{spec.purpose}"
            bucket = aws.s3.Bucket(
                key, bucket_prefix=f"{args.prefix}-{spec.purpose}-", force_destroy=False, tags=tagged, opts=child(self)
            )
            within = child(bucket)
            aws.s3.BucketOwnershipControls(
                key,
                bucket=bucket.id,
                opts=within,
                rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),  # no ACLs
            )
            aws.s3.BucketPublicAccessBlock(
                key,
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=within,
            )
            aws.s3.BucketServerSideEncryptionConfiguration(
                key,
                bucket=bucket.id,
                opts=within,
                rules=[
                    aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                        apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                            sse_algorithm="aws:kms",
                            kms_master_key_id=args.kms_key_arn,
                        ),
                        bucket_key_enabled=True,  # one KMS call per bucket key, not per object: far fewer KMS requests
                    )
                ],
            )
            aws.s3.BucketVersioning(
                key,
                bucket=bucket.id,
                opts=within,
                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            )
            rules = [
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-old-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=spec.noncurrent_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=7
                    ),
                )
            ]
            if spec.archive_days:
                rules.append(
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="archive",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                        transitions=[
                            aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                                days=spec.archive_days, storage_class="GLACIER_IR"
                            )
                        ],
                    )
                )
            aws.s3.BucketLifecycleConfiguration(key, bucket=bucket.id, rules=rules, opts=within)
            aws.s3.BucketPolicy(
                key,
                bucket=bucket.id,
                opts=within,
                policy=policy(
                    [
                        {
                            "Sid": "TLSOnly",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [bucket.arn, bucket.arn.apply(lambda arn: f"{arn}/*")],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ]
                ),
            )
            self.buckets[spec.purpose] = bucket.id
            self.bucket_arns[spec.purpose] = bucket.arn

        if args.efs or args.fsx_lustre_gib:
            assert args.subnet_ids
            assert args.vpc_id is not None
            nfs = vpc_only_group(
                f"{name}-shared-fs",
                args.vpc_id,
                args.vpc_cidr,
                "NFS and Lustre from inside the VPC only",
                [(2049, 2049), (988, 1023)],
                tags=tagged,
                opts=child(self),
            )
            if args.efs:
                efs = aws.efs.FileSystem(
                    f"{name}-training-data",
                    encrypted=True,
                    kms_key_id=args.kms_key_arn,
                    throughput_mode="elastic",
                    tags=tagged,
                    opts=child(self),
                )
                for index, subnet in enumerate(args.subnet_ids):
                    aws.efs.MountTarget(
                        f"{name}-training-data-{index}",
                        file_system_id=efs.id,
                        subnet_id=subnet,
                        security_groups=[nfs.id],
                        opts=child(efs),
                    )
            if args.fsx_lustre_gib:
                aws.fsx.LustreFileSystem(
                    f"{name}-scratch",
                    storage_capacity=args.fsx_lustre_gib,
                    deployment_type="SCRATCH_2",
                    subnet_ids=[args.subnet_ids[0]],
                    security_group_ids=[nfs.id],
                    tags=tagged,
                    opts=child(self),
                )
        self.register_outputs({"buckets": self.buckets})
