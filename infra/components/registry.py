"""The container registry: the ECR repository the platform runtime image (platform/runtime/Dockerfile) is
pushed to. Tags are immutable (a pushed tag never points at other bytes; pipelines name the image by
digest anyway, platform/runtime/images.yaml), every push is scanned, the layers are encrypted with the
stack's KMS key, and only the newest images are kept."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.common import child, tags

#: Images kept; older ones expire (a pipeline version still naming one fails to pull: rebuild, not restore).
KEEP_IMAGES = 50


@dataclass(frozen=True)
class RegistryArgs:
    name: str
    kms_key_arn: pulumi.Input[str]
    env: str
    cost_center: str


class Registry(pulumi.ComponentResource):
    """Outputs: ``runtime_repository_url``, ``runtime_repository_arn``."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipyard:infra:Registry", name, None, opts)
        runtime = aws.ecr.Repository(
            f"{name}-runtime",
            name=f"{args.name}-runtime",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[
                aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=args.kms_key_arn)
            ],
            force_delete=False,
            tags=tags(args.env, args.cost_center),
            opts=child(self),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-runtime",
            repository=runtime.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"keep the newest {KEEP_IMAGES} images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": KEEP_IMAGES,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                },
                sort_keys=True,
            ),
            opts=child(runtime),
        )
        self.runtime_repository_url = runtime.repository_url
        self.runtime_repository_arn = runtime.arn
        self.register_outputs(
            {
                "runtime_repository_url": self.runtime_repository_url,
                "runtime_repository_arn": self.runtime_repository_arn,
            }
        )
