"""Rules on the cloud resources the infra program (``infra/``) plans: encryption, exposure, logging, cost tags.

They read the infra plane's desired Resources (``kind`` is the Pulumi type token, ``body["inputs"]`` the
resource's inputs: under Pulumi's mocks for a base plan, from ``pulumi preview`` for a deployed stack) and
name the upstream checks each corresponds to, so a reviewer who knows Checkov or AWS Config reads them as
familiar. Each finding points at the Resource's source, or at line 1 of its stack's ``Pulumi.<stack>.yaml``,
and its ``subject`` is the Resource's key, so ``policies/waivers.yaml`` can waive exactly one.

Fail closed: a preview shows a value computed from another resource's output as "(known after apply)". A
rule that needs such a value to decide reports it as something it cannot verify until apply, at the rule's
own enforcement: a mandatory rule still blocks (waive it for the first apply of a new stack if needed).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from shipyard.sdk import Diagnostic, PolicyContext, Resource, SourcePosition, rule
from shipyard.sdk.files import linked

PLANE = "infra"

# What an input waiting on an output reads as: the infra plane's preview writes KNOWN_AFTER_APPLY
# (platform/shipyard/planes/infra/preview.py); the raw wire value of Pulumi's engine is the UUID.
UNKNOWN_VALUES = frozenset({"(known after apply)", "04da6b54-80e4-46f7-96ec-b56ff0331ba9"})
CANNOT_VERIFY = "a value known only after apply (cannot verify until apply)"

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
SSE_CONFIGS = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
VERSIONINGS = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
BUCKET_POLICIES = ("aws:s3/bucketPolicy:BucketPolicy",)
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
EFS = "aws:efs/fileSystem:FileSystem"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SECURITY_GROUP_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
KMS_KEY = "aws:kms/key:Key"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
MANAGED_POLICY = "aws:iam/policy:Policy"
RDS_INSTANCE = "aws:rds/instance:Instance"
AWS_PROVIDER = "pulumi:providers:aws"

ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
#: Actions with no resource-level permissions: AWS allows them on Resource "*" only (SY-AWS-014 accepts them).
ONLY_ON_STAR = frozenset({"ecr:GetAuthorizationToken", "sts:GetCallerIdentity"})

PRODUCTION = "prod"
CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
COST_TAGS = ("team", "cost-center", "env")
# AWS types that take no tags: every other aws: type the program registers must carry the cost tags.
UNTAGGABLE = frozenset(
    {
        *PUBLIC_ACCESS_BLOCK,
        *SSE_CONFIGS,
        *VERSIONINGS,
        *BUCKET_POLICIES,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketAclV2:BucketAclV2",
        "aws:s3/bucketLoggingV2:BucketLoggingV2",
        "aws:s3/bucketNotification:BucketNotification",
        ROLE_POLICY,
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
        "aws:kms/alias:Alias",
        "aws:kms/grant:Grant",
        "aws:efs/mountTarget:MountTarget",
        "aws:efs/backupPolicy:BackupPolicy",
        "aws:efs/fileSystemPolicy:FileSystemPolicy",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:ec2/route:Route",
        SECURITY_GROUP_RULE,
        "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation",
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
        "aws:ecr/lifecyclePolicy:LifecyclePolicy",
        "aws:ecr/repositoryPolicy:RepositoryPolicy",
    }
)


# --- helpers ---------------------------------------------------------------------------------------------


def _of(ctx: PolicyContext, *kinds: str) -> list[Resource]:
    """The infra Resources of ``kinds``, in plan order; some 90 rules ask, over 13,000 Resources at 500 teams."""
    positions = _by_kind(ctx.resources or ())
    found = sorted(entry for kind in kinds for entry in positions.get(kind, ()))
    return [resource for _, resource in found]


_indexed: tuple[object, dict[str, list[tuple[int, Resource]]]] = ((), {})


def _by_kind(resources: Sequence[Resource]) -> dict[str, list[tuple[int, Resource]]]:
    # One index per plan's Resources (the last one asked about), not one scan per rule.
    global _indexed
    if _indexed[0] is not resources:
        index: dict[str, list[tuple[int, Resource]]] = {}
        for position, resource in enumerate(resources):
            if resource.plane == PLANE:
                index.setdefault(resource.kind, []).append((position, resource))
        _indexed = (resources, index)
    return _indexed[1]


def _inputs(resource: Resource) -> Mapping[str, Any]:
    found = resource.body.get("inputs", {})
    return found if isinstance(found, Mapping) else {}


def _unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWN_VALUES


def _at(value: Any, *path: str | int) -> Any:
    """The value at ``path`` (None where absent); an unknown on the way is returned as it is."""
    for part in path:
        if _unknown(value):
            return value
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and -len(value) <= part < len(value) else None
        else:
            value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _true(value: Any) -> bool:
    """A boolean input: Pulumi passes some (launch template EBS flags) as the strings "true"/"false"."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _finding(resource: Resource, key: str, *, got: str, expected: str, hint: str = "") -> Diagnostic:
    """A finding about ``resource``: at its source (else its stack's file, line 1), its key the subject."""
    position = resource.source or SourcePosition(f"Pulumi.{resource.scope}.yaml", 1, 1)
    found = Diagnostic.mismatch(
        "policy", got=got, expected=expected, position=position, key_path=f"{resource.key}: {key}", hint=hint
    )
    return replace(found, subject=resource.key)


def _cannot_verify(resource: Resource, key: str, expected: str) -> Diagnostic:
    return _finding(
        resource,
        key,
        got=CANNOT_VERIFY,
        expected=expected,
        hint="the value comes from another resource's output; the rule fails closed: waive this finding for the "
        "first apply if the value is known to comply",
    )


def _ref(parent: str) -> str:
    """``type::name`` of a parent or dependency, whether written short (``aws:s3/bucket:Bucket::x``) or as a URN."""
    qualified, _, name = parent.rpartition("::")
    kind = qualified.rsplit("$", 1)[-1]
    if kind.startswith("urn:pulumi:"):
        kind = kind.split("::")[-1]
    return f"{kind}::{name}"


def _belongs_to(companion: Resource, bucket: Resource) -> bool:
    """Whether ``companion`` (a public access block, an SSE config, ...) configures ``bucket``: it is parented
    to it, depends on it, or names the bucket's explicit name."""
    if companion.scope != bucket.scope:
        return False
    mine = f"{bucket.kind}::{bucket.name}"
    parent = companion.body.get("parent")
    if isinstance(parent, str) and parent and _ref(parent) == mine:
        return True
    if any(isinstance(d, str) and _ref(d) == mine for d in _list(companion.body.get("dependsOn"))):
        return True
    named = _inputs(bucket).get("bucket")
    return isinstance(named, str) and not _unknown(named) and _inputs(companion).get("bucket") == named


def _companions(ctx: PolicyContext, bucket: Resource, kinds: Sequence[str]) -> list[Resource]:
    return [c for c in _of(ctx, *kinds) if _belongs_to(c, bucket)]


def _document(resource: Resource, key: str, value: Any) -> tuple[Mapping[str, Any] | None, Diagnostic | None]:
    """A policy document input (JSON text or a mapping), or the finding that says why it cannot be read."""
    if _unknown(value):
        return None, _cannot_verify(resource, key, "a policy document to check")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None, _finding(resource, key, got="a policy that is not JSON", expected="a JSON policy document")
    if not isinstance(value, Mapping):
        return None, _finding(resource, key, got=f"{type(value).__name__}", expected="a JSON policy document")
    return value, None


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in _list(document.get("Statement")) if isinstance(s, Mapping)]


def _inline_policies(ctx: PolicyContext) -> Iterator[tuple[Resource, str, Any]]:
    """Every identity policy the program writes: role inline policies, managed policies and a role's
    ``inlinePolicies``. Trust policies (``assumeRolePolicy``) are not identity policies and are excluded."""
    for resource in _of(ctx, ROLE_POLICY, MANAGED_POLICY):
        yield resource, "inputs.policy", _inputs(resource).get("policy")
    for role in _of(ctx, ROLE):
        for i, inline in enumerate(_list(_inputs(role).get("inlinePolicies"))):
            policy = _at(inline, "policy")
            if policy is not None:
                yield role, f"inputs.inlinePolicies[{i}].policy", policy


# --- S3 ----------------------------------------------------------------------------------------------------


@rule(
    "SY-AWS-001",
    "S3 buckets encrypt by default with SSE-KMS.",
    target=BUCKETS[0],
    needs_resources=True,
    references=("checkov:CKV_AWS_19", "checkov:CKV_AWS_145", "aws-config:s3-bucket-server-side-encryption-enabled"),
    hint="add an aws.s3.BucketServerSideEncryptionConfiguration with sse_algorithm='aws:kms' and the stack's key",
)
def s3_sse_kms(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for bucket in _of(ctx, *BUCKETS):
        inline = _inputs(bucket).get("serverSideEncryptionConfiguration")
        if not _companions(ctx, bucket, SSE_CONFIGS) and inline is None:
            yield _finding(
                bucket, "serverSideEncryption", got="no server-side encryption configuration", expected="SSE-KMS"
            )
        elif inline is not None:
            yield from _sse_rules(bucket, "inputs.serverSideEncryptionConfiguration.rule", _list(_at(inline, "rule")))
    for config in _of(ctx, *SSE_CONFIGS):
        rules = _inputs(config).get("rules")
        if _unknown(rules):
            yield _cannot_verify(config, "inputs.rules", "sseAlgorithm aws:kms")
        else:
            yield from _sse_rules(config, "inputs.rules", _list(rules))


def _sse_rules(resource: Resource, key: str, rules: list[Any]) -> Iterator[Diagnostic]:
    if not rules:
        yield _finding(resource, key, got="no encryption rule", expected="sseAlgorithm aws:kms")
    for i, item in enumerate(rules):
        algorithm = _at(item, "applyServerSideEncryptionByDefault", "sseAlgorithm")
        where = f"{key}[{i}].applyServerSideEncryptionByDefault.sseAlgorithm"
        if _unknown(algorithm):
            yield _cannot_verify(resource, where, "aws:kms")
        elif algorithm not in ("aws:kms", "aws:kms:dsse"):
            yield _finding(resource, where, got=f"{algorithm or 'no algorithm'}", expected="aws:kms (SSE-KMS)")


@rule(
    "SY-AWS-002",
    "S3 buckets block every kind of public access.",
    target=BUCKETS[0],
    needs_resources=True,
    references=(
        "checkov:CKV2_AWS_6",
        "checkov:CKV_AWS_53",
        "checkov:CKV_AWS_54",
        "checkov:CKV_AWS_55",
        "checkov:CKV_AWS_56",
        "aws-config:s3-bucket-level-public-access-prohibited",
    ),
    hint="add an aws.s3.BucketPublicAccessBlock with block_public_acls, block_public_policy, ignore_public_acls "
    "and restrict_public_buckets all True",
)
def s3_public_access_block(ctx: PolicyContext) -> Iterator[Diagnostic]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in _of(ctx, *BUCKETS):
        if not _companions(ctx, bucket, PUBLIC_ACCESS_BLOCK):
            yield _finding(bucket, "publicAccessBlock", got="no public access block", expected="all four flags true")
    for block in _of(ctx, *PUBLIC_ACCESS_BLOCK):
        for flag in flags:
            value = _inputs(block).get(flag)
            if _unknown(value):
                yield _cannot_verify(block, f"inputs.{flag}", "true")
            elif not _true(value):
                yield _finding(
                    block, f"inputs.{flag}", got=f"{value if value is not None else 'unset'}", expected="true"
                )


@rule(
    "SY-AWS-003",
    "S3 bucket policies deny requests that are not TLS.",
    target=BUCKETS[0],
    needs_resources=True,
    references=("aws-config:s3-bucket-ssl-requests-only",),
    hint="add a bucket policy statement: Effect Deny, Principal *, Action s3:*, the bucket and its objects, "
    'Condition {"Bool": {"aws:SecureTransport": "false"}}',
)
def s3_tls_only(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for bucket in _of(ctx, *BUCKETS):
        policies = [(p, "inputs.policy", _inputs(p).get("policy")) for p in _companions(ctx, bucket, BUCKET_POLICIES)]
        if _inputs(bucket).get("policy") is not None:
            policies.append((bucket, "inputs.policy", _inputs(bucket).get("policy")))
        if not policies:
            yield _finding(bucket, "policy", got="no bucket policy", expected="a Deny on aws:SecureTransport false")
            continue
        found: list[Diagnostic] = []
        for owner, key, value in policies:
            document, problem = _document(owner, key, value)
            if problem is not None:
                found.append(problem)
            elif document is not None and any(_denies_plain_http(s) for s in _statements(document)):
                break
        else:
            yield from found or [
                _finding(
                    policies[0][0],
                    "inputs.policy",
                    got="no statement denying requests without TLS",
                    expected="Effect Deny on everyone when aws:SecureTransport is false",
                )
            ]


def _denies_plain_http(statement: Mapping[str, Any]) -> bool:
    if statement.get("Effect") != "Deny":
        return False
    principal = statement.get("Principal")
    if principal != "*" and _at(principal, "AWS") not in ("*", ["*"]):
        return False
    if not any(a in ("*", "s3:*") for a in _list(statement.get("Action"))):
        return False
    condition = statement.get("Condition")
    for operator in ("Bool", "BoolIfExists"):
        secure = _at(condition, operator, "aws:SecureTransport")
        if any(v is False or (isinstance(v, str) and v.lower() == "false") for v in _list(secure)):
            return True
    return False


@rule(
    "SY-AWS-004",
    "S3 buckets keep object versions.",
    target=BUCKETS[0],
    needs_resources=True,
    references=("checkov:CKV_AWS_21", "aws-config:s3-bucket-versioning-enabled"),
    hint="add an aws.s3.BucketVersioning with versioning_configuration status 'Enabled'",
)
def s3_versioning(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for bucket in _of(ctx, *BUCKETS):
        inline = _inputs(bucket).get("versioning")
        if not _companions(ctx, bucket, VERSIONINGS) and inline is None:
            yield _finding(bucket, "versioning", got="no versioning", expected="status Enabled")
        elif inline is not None:
            enabled = _at(inline, "enabled")
            if _unknown(enabled):
                yield _cannot_verify(bucket, "inputs.versioning.enabled", "true")
            elif not _true(enabled):
                yield _finding(bucket, "inputs.versioning.enabled", got=f"{enabled}", expected="true")
    for versioning in _of(ctx, *VERSIONINGS):
        status = _at(_inputs(versioning), "versioningConfiguration", "status")
        if _unknown(status):
            yield _cannot_verify(versioning, "inputs.versioningConfiguration.status", "Enabled")
        elif status != "Enabled":
            yield _finding(
                versioning, "inputs.versioningConfiguration.status", got=f"{status or 'unset'}", expected="Enabled"
            )


# --- compute and storage ----------------------------------------------------------------------------------


@rule(
    "SY-AWS-005",
    "Node volumes (launch template block devices) are encrypted.",
    target=LAUNCH_TEMPLATE,
    needs_resources=True,
    references=("checkov:CKV_AWS_8", "awsguard:encrypted-volumes", "aws-config:encrypted-volumes"),
    hint="give every block device mapping ebs encrypted='true' with the stack's KMS key; node groups use a "
    "launch template so that the setting applies",
)
def ebs_encrypted(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for template in _of(ctx, LAUNCH_TEMPLATE):
        mappings = _inputs(template).get("blockDeviceMappings")
        if _unknown(mappings):
            yield _cannot_verify(template, "inputs.blockDeviceMappings", "encrypted volumes")
            continue
        if not _list(mappings):
            yield _finding(
                template,
                "inputs.blockDeviceMappings",
                got="no block device mappings (the AMI's volumes, encrypted only by account default)",
                expected="every volume mapped with ebs.encrypted true",
            )
        for i, mapping in enumerate(_list(mappings)):
            ebs = _at(mapping, "ebs")
            if ebs is None:
                continue  # an instance store or a suppressed device: no EBS volume
            encrypted = _at(ebs, "encrypted")
            where = f"inputs.blockDeviceMappings[{i}].ebs.encrypted"
            if _unknown(encrypted):
                yield _cannot_verify(template, where, "true")
            elif not _true(encrypted):
                yield _finding(
                    template, where, got=f"{encrypted if encrypted is not None else 'unset'}", expected="true"
                )
    for group in _of(ctx, NODE_GROUP):
        if _inputs(group).get("launchTemplate") is None:
            yield _finding(
                group,
                "inputs.launchTemplate",
                got="no launch template (EKS's default volume, encrypted only by account default)",
                expected="a launch template with encrypted volumes",
            )


@rule(
    "SY-AWS-006",
    "EFS file systems are encrypted with KMS.",
    target=EFS,
    needs_resources=True,
    references=("checkov:CKV_AWS_42", "checkov:CKV_AWS_184", "awsguard:efs-encrypted"),
    hint="create the aws.efs.FileSystem with encrypted=True and kms_key_id the stack's key",
)
def efs_encrypted(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for fs in _of(ctx, EFS):
        encrypted = _inputs(fs).get("encrypted")
        if _unknown(encrypted):
            yield _cannot_verify(fs, "inputs.encrypted", "true")
        elif not _true(encrypted):
            yield _finding(
                fs, "inputs.encrypted", got=f"{encrypted if encrypted is not None else 'unset'}", expected="true"
            )
        elif not _inputs(fs).get("kmsKeyId"):
            yield _finding(fs, "inputs.kmsKeyId", got="unset (the AWS-managed key)", expected="the stack's KMS key")


@rule(
    "SY-AWS-007",
    "Nodes require IMDSv2 with a hop limit of 1.",
    target=LAUNCH_TEMPLATE,
    needs_resources=True,
    references=("checkov:CKV_AWS_79", "checkov:CKV_AWS_341", "aws-config:ec2-imdsv2-check"),
    hint="set metadata_options http_tokens='required' and http_put_response_hop_limit=1: pods then reach AWS "
    "through IRSA, never through the node's role",
)
def imdsv2(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for template in _of(ctx, LAUNCH_TEMPLATE):
        options = _inputs(template).get("metadataOptions")
        if _unknown(options):
            yield _cannot_verify(template, "inputs.metadataOptions", "httpTokens required, hop limit 1")
            continue
        if _at(options, "httpEndpoint") == "disabled":
            continue  # no metadata service at all
        tokens = _at(options, "httpTokens")
        if _unknown(tokens):
            yield _cannot_verify(template, "inputs.metadataOptions.httpTokens", "required")
        elif tokens != "required":
            yield _finding(
                template,
                "inputs.metadataOptions.httpTokens",
                got=f"{tokens or 'unset (IMDSv1 allowed)'}",
                expected="required (IMDSv2)",
            )
        hops = _at(options, "httpPutResponseHopLimit")
        if _unknown(hops):
            yield _cannot_verify(template, "inputs.metadataOptions.httpPutResponseHopLimit", "1")
        elif not isinstance(hops, int | float) or isinstance(hops, bool) or hops != 1:
            yield _finding(
                template,
                "inputs.metadataOptions.httpPutResponseHopLimit",
                got=f"{hops if hops is not None else 'unset (the AMI default, 2 on EKS AMIs)'}",
                expected="1",
            )


# --- EKS ---------------------------------------------------------------------------------------------------


@rule(
    "SY-AWS-008",
    "The EKS API endpoint is private, or public only to listed networks (never 0.0.0.0/0).",
    target=EKS_CLUSTER,
    needs_resources=True,
    references=("checkov:CKV_AWS_39", "checkov:CKV_AWS_38", "aws-config:eks-endpoint-no-public-access"),
    hint="set cluster.publicAccessCidrs in Pulumi.<stack>.yaml to your office or VPN ranges, or leave it empty "
    "to keep the endpoint private",
)
def eks_endpoint(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for cluster in _of(ctx, EKS_CLUSTER):
        vpc = _inputs(cluster).get("vpcConfig")
        public = _at(vpc, "endpointPublicAccess")
        if _unknown(vpc) or _unknown(public):
            yield _cannot_verify(cluster, "inputs.vpcConfig.endpointPublicAccess", "false, or narrow CIDRs")
            continue
        if public is not None and not _true(public):
            continue
        cidrs = _at(vpc, "publicAccessCidrs")
        if _unknown(cidrs):
            yield _cannot_verify(cluster, "inputs.vpcConfig.publicAccessCidrs", "narrow CIDRs")
            continue
        state = "true" if public is not None else "unset (public by default)"
        if not _list(cidrs):
            yield _finding(
                cluster,
                "inputs.vpcConfig.publicAccessCidrs",
                got=f"endpointPublicAccess {state} with no publicAccessCidrs (open to 0.0.0.0/0)",
                expected="endpointPublicAccess false, or publicAccessCidrs listing narrow ranges",
            )
        for i, cidr in enumerate(_list(cidrs)):
            if _unknown(cidr):
                yield _cannot_verify(cluster, f"inputs.vpcConfig.publicAccessCidrs[{i}]", "a narrow range")
            elif _open_to_all(cidr):
                yield _finding(
                    cluster,
                    f"inputs.vpcConfig.publicAccessCidrs[{i}]",
                    got=f"{cidr} (the whole internet)",
                    expected="a narrow range, or a private endpoint",
                )


def _open_to_all(cidr: Any) -> bool:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0
    except ValueError:
        return False


@rule(
    "SY-AWS-009",
    "EKS encrypts Kubernetes secrets with a KMS key (envelope encryption).",
    target=EKS_CLUSTER,
    needs_resources=True,
    references=("checkov:CKV_AWS_58", "aws-config:eks-secrets-encrypted"),
    hint="set encryption_config resources=['secrets'] with provider key_arn the stack's KMS key",
)
def eks_secrets_encryption(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for cluster in _of(ctx, EKS_CLUSTER):
        config = _inputs(cluster).get("encryptionConfig")
        if _unknown(config):
            yield _cannot_verify(cluster, "inputs.encryptionConfig", "secrets encrypted with a KMS key")
            continue
        configs = _list(config)
        covered = [c for c in configs if "secrets" in _list(_at(c, "resources")) and _at(c, "provider", "keyArn")]
        if not covered:
            yield _finding(
                cluster,
                "inputs.encryptionConfig",
                got="no encryption config for secrets" if not configs else "an encryption config without secrets",
                expected="resources ['secrets'] with provider.keyArn",
            )


@rule(
    "SY-AWS-010",
    "EKS sends all five control-plane log types to CloudWatch.",
    target=EKS_CLUSTER,
    needs_resources=True,
    references=("checkov:CKV_AWS_37",),
    hint="set enabled_cluster_log_types to api, audit, authenticator, controllerManager and scheduler",
)
def eks_control_plane_logs(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for cluster in _of(ctx, EKS_CLUSTER):
        types = _inputs(cluster).get("enabledClusterLogTypes")
        if _unknown(types):
            yield _cannot_verify(cluster, "inputs.enabledClusterLogTypes", ", ".join(CONTROL_PLANE_LOGS))
            continue
        missing = [t for t in CONTROL_PLANE_LOGS if t not in _list(types)]
        if missing:
            yield _finding(
                cluster,
                "inputs.enabledClusterLogTypes",
                got=f"missing {', '.join(missing)}",
                expected=", ".join(CONTROL_PLANE_LOGS),
            )


# --- network -----------------------------------------------------------------------------------------------


@rule(
    "SY-AWS-011",
    "No security group admits ingress from 0.0.0.0/0 or ::/0.",
    target=SECURITY_GROUP,
    needs_resources=True,
    references=(
        "checkov:CKV_AWS_24",
        "checkov:CKV_AWS_25",
        "checkov:CKV_AWS_260",
        "checkov:CKV_AWS_277",
        "aws-config:vpc-sg-open-only-to-authorized-ports",
    ),
    hint="admit the VPC's range or another security group (components.common.vpc_only_group); public traffic "
    "enters through a load balancer",
)
def no_open_ingress(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for group in _of(ctx, SECURITY_GROUP):
        ingress = _inputs(group).get("ingress")
        if _unknown(ingress):
            yield _cannot_verify(group, "inputs.ingress", "no ingress from 0.0.0.0/0 or ::/0")
            continue
        for i, entry in enumerate(_list(ingress)):
            yield from _open_sources(group, f"inputs.ingress[{i}]", entry, ("cidrBlocks", "ipv6CidrBlocks"))
    for item in _of(ctx, SECURITY_GROUP_RULE):
        kind = _inputs(item).get("type")
        if _unknown(kind):
            yield _cannot_verify(item, "inputs.type", "an egress rule or a narrow ingress")
        elif kind == "ingress":
            yield from _open_sources(item, "inputs", _inputs(item), ("cidrBlocks", "ipv6CidrBlocks"))
    for item in _of(ctx, SECURITY_GROUP_INGRESS):
        yield from _open_sources(item, "inputs", _inputs(item), ("cidrIpv4", "cidrIpv6"))


def _open_sources(resource: Resource, key: str, entry: Any, fields: Sequence[str]) -> Iterator[Diagnostic]:
    for field in fields:
        value = _at(entry, field)
        if _unknown(value):
            yield _cannot_verify(resource, f"{key}.{field}", "no 0.0.0.0/0 or ::/0")
            continue
        for cidr in _list(value):
            if _unknown(cidr):
                yield _cannot_verify(resource, f"{key}.{field}", "no 0.0.0.0/0 or ::/0")
            elif _open_to_all(cidr):
                ports = f"{_at(entry, 'fromPort')}-{_at(entry, 'toPort')}"
                yield _finding(
                    resource,
                    f"{key}.{field}",
                    got=f"ingress from {cidr} (ports {ports}, the whole internet)",
                    expected="the VPC's range or a security group",
                )


# --- keys and identity -------------------------------------------------------------------------------------


@rule(
    "SY-AWS-012",
    "KMS keys rotate their key material yearly.",
    target=KMS_KEY,
    needs_resources=True,
    references=("checkov:CKV_AWS_7", "awsguard:cmk-backing-key-rotation-enabled"),
    hint="create the aws.kms.Key with enable_key_rotation=True",
)
def kms_rotation(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for key in _of(ctx, KMS_KEY):
        spec = _inputs(key).get("customerMasterKeySpec") or _inputs(key).get("keySpec") or "SYMMETRIC_DEFAULT"
        if spec != "SYMMETRIC_DEFAULT" and not _unknown(spec):
            continue  # asymmetric and HMAC keys cannot rotate automatically
        rotation = _inputs(key).get("enableKeyRotation")
        if _unknown(rotation):
            yield _cannot_verify(key, "inputs.enableKeyRotation", "true")
        elif not _true(rotation):
            yield _finding(
                key, "inputs.enableKeyRotation", got=f"{rotation if rotation is not None else 'unset'}", expected="true"
            )


@rule(
    "SY-AWS-013",
    'IAM policies we write never allow every action ("*").',
    target=ROLE_POLICY,
    needs_resources=True,
    references=("checkov:CKV_AWS_63", "checkov:CKV_AWS_62", "aws-config:iam-policy-no-statements-with-admin-access"),
    hint="list the actions the service needs; trust policies (assumeRolePolicy) are not checked here",
)
def iam_no_star_action(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for owner, key, value in _inline_policies(ctx):
        document, problem = _document(owner, key, value)
        if problem is not None:
            yield problem
            continue
        for i, statement in enumerate(_statements(document or {})):
            if statement.get("Effect") != "Allow":
                continue  # a Deny on "*" narrows, it grants nothing
            if "NotAction" in statement:
                yield _finding(
                    owner,
                    f"{key}.Statement[{i}].NotAction",
                    got="Allow with NotAction (every action but those listed)",
                    expected="Allow with a list of actions",
                )
            actions = [a for a in _list(statement.get("Action")) if a in ("*", "*:*")]
            if actions:
                yield _finding(
                    owner,
                    f"{key}.Statement[{i}].Action",
                    got='Allow on Action "*"',
                    expected="the actions the role needs",
                )


# Advisory, not mandatory: the template's CI deploy role (infra/components/iam.py, RolePolicy
# `iam-ci-deploy-roles`) allows its IAM actions on Resource "*" with no condition. Make this rule
# mandatory once that statement is scoped to role and OIDC-provider ARNs. An Allow on "*" narrowed by a
# Condition (the services' kms:Decrypt limited by kms:ViaService to S3) is accepted.
@rule(
    "SY-AWS-014",
    'IAM policies we write name the resources they allow (no unconditioned Resource "*").',
    target=ROLE_POLICY,
    mandatory=False,
    needs_resources=True,
    references=("checkov:CKV_AWS_355", "checkov:CKV_AWS_290"),
    hint="scope Resource to the ARNs the role acts on (for IAM: arn:aws:iam::<account>:role/shipyard-*), or "
    "narrow it with a Condition",
)
def iam_no_star_resource(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for owner, key, value in _inline_policies(ctx):
        document, problem = _document(owner, key, value)
        if problem is not None:
            yield problem
            continue
        for i, statement in enumerate(_statements(document or {})):
            if statement.get("Effect") != "Allow" or statement.get("Condition"):
                continue
            actions = _list(statement.get("Action"))
            if actions and all(a in ONLY_ON_STAR for a in actions):
                continue  # AWS grants these on "*" only: there is no ARN to name
            if "NotResource" in statement or "*" in _list(statement.get("Resource")):
                field = "NotResource" if "NotResource" in statement else "Resource"
                yield _finding(
                    owner,
                    f"{key}.Statement[{i}].{field}",
                    got=f'Allow on {field} "*" with no Condition' if field == "Resource" else "Allow with NotResource",
                    expected="named resource ARNs, or a Condition",
                )


# --- databases ---------------------------------------------------------------------------------------------


@rule(
    "SY-AWS-015",
    "RDS storage is encrypted.",
    target=RDS_INSTANCE,
    needs_resources=True,
    references=("checkov:CKV_AWS_16", "awsguard:rds-storage-encrypted"),
    hint="create the aws.rds.Instance with storage_encrypted=True and kms_key_id the stack's key",
)
def rds_encrypted(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for db in _of(ctx, RDS_INSTANCE):
        if _inputs(db).get("replicateSourceDb"):
            continue  # a read replica takes its source's encryption (kmsKeyId)
        encrypted = _inputs(db).get("storageEncrypted")
        if _unknown(encrypted):
            yield _cannot_verify(db, "inputs.storageEncrypted", "true")
        elif not _true(encrypted):
            yield _finding(
                db, "inputs.storageEncrypted", got=f"{encrypted if encrypted is not None else 'unset'}", expected="true"
            )


@rule(
    "SY-AWS-016",
    "RDS instances are not publicly accessible.",
    target=RDS_INSTANCE,
    needs_resources=True,
    references=("checkov:CKV_AWS_17", "awsguard:rds-instance-public-access-check"),
    hint="set publicly_accessible=False: clients reach the database from inside the VPC",
)
def rds_not_public(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for db in _of(ctx, RDS_INSTANCE):
        public = _inputs(db).get("publiclyAccessible")
        if _unknown(public):
            yield _cannot_verify(db, "inputs.publiclyAccessible", "false")
        elif _true(public):
            yield _finding(db, "inputs.publiclyAccessible", got="true", expected="false")


@rule(
    "SY-AWS-017",
    "RDS instances of the prod stack have deletion protection.",
    target=RDS_INSTANCE,
    needs_resources=True,
    references=("checkov:CKV_AWS_293", "aws-config:rds-instance-deletion-protection-enabled"),
    hint="set deletion_protection=True on the prod stack's databases",
)
def rds_deletion_protection(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for db in _of(ctx, RDS_INSTANCE):
        env = _at(_inputs(db), "tags", "env")
        if db.scope != PRODUCTION and env != PRODUCTION:
            continue
        protected = _inputs(db).get("deletionProtection")
        if _unknown(protected):
            yield _cannot_verify(db, "inputs.deletionProtection", "true")
        elif not _true(protected):
            yield _finding(
                db,
                "inputs.deletionProtection",
                got=f"{protected if protected is not None else 'unset'} on the prod stack",
                expected="true",
            )


# --- cost --------------------------------------------------------------------------------------------------


# Mandatory: the template sets all three on every taggable resource (components.common.tags).
@rule(
    "SY-AWS-018",
    "Every taggable AWS resource carries the cost tags team, cost-center and env.",
    target="aws:*",
    needs_resources=True,
    references=("aws-config:required-tags",),
    hint="pass tags=components.common.tags(env, cost_center) (or set them as the AWS provider's default_tags)",
)
def cost_tags(ctx: PolicyContext) -> Iterator[Diagnostic]:
    defaults = _provider_default_tags(ctx.resources or ())
    for resource in ctx.resources or ():
        if resource.plane != PLANE or not resource.kind.startswith("aws:") or resource.kind in UNTAGGABLE:
            continue
        tags = _inputs(resource).get("tags")
        if _unknown(tags):
            yield _cannot_verify(resource, "inputs.tags", ", ".join(COST_TAGS))
            continue
        merged = dict(defaults.get(resource.scope, {})) | (dict(tags) if isinstance(tags, Mapping) else {})
        unknown = [t for t in COST_TAGS if _unknown(merged.get(t))]
        missing = [t for t in COST_TAGS if t not in unknown and not merged.get(t)]
        if unknown:
            yield _cannot_verify(resource, "inputs.tags", ", ".join(unknown))
        if missing:
            yield _finding(
                resource, "inputs.tags", got=f"no {', '.join(missing)} tag", expected=f"tags {', '.join(COST_TAGS)}"
            )


def _provider_default_tags(resources: Iterable[Resource]) -> dict[str, Mapping[str, Any]]:
    """The ``defaultTags`` every explicit AWS provider of a stack sets: each resource it makes carries them."""
    found: dict[str, Mapping[str, Any]] = {}
    for resource in resources:
        if resource.plane == PLANE and resource.kind == AWS_PROVIDER:
            tags = _at(_inputs(resource), "defaultTags", "tags")
            if isinstance(tags, str) and not _unknown(tags):
                try:
                    tags = json.loads(tags)
                except ValueError:
                    tags = None
            mine = dict(tags) if isinstance(tags, Mapping) else {}
            if resource.scope in found:  # several providers: only the tags they all set are certain
                mine = {k: v for k, v in mine.items() if found[resource.scope].get(k) == v}
            found[resource.scope] = mine
    return found


GITHUB_OIDC = "token.actions.githubusercontent.com"
STS = "sts.amazonaws.com"
_SERVICE_ACCOUNT = re.compile(r"^system:serviceaccount:[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _web_identity_trusts(ctx: PolicyContext) -> Iterator[tuple[Resource, Mapping[str, Any] | None, Diagnostic | None]]:
    """Each role's trust statements that let a web identity (an OIDC token) assume it."""
    for role in _of(ctx, ROLE):
        document, problem = _document(role, "assumeRolePolicy", _inputs(role).get("assumeRolePolicy"))
        if problem is not None:
            yield role, None, problem
            continue
        assert document is not None
        for statement in _list(document.get("Statement")):
            actions = _list(statement.get("Action")) if isinstance(statement, Mapping) else []
            if statement.get("Effect") == "Allow" and "sts:AssumeRoleWithWebIdentity" in actions:
                yield role, statement, None


def _pinned(statement: Mapping[str, Any], suffix: str) -> Any:
    """The value a StringEquals condition pins ``*:<suffix>`` to (None when it is not pinned that way)."""
    equals = _at(statement, "Condition", "StringEquals")
    if not isinstance(equals, Mapping):
        return None
    return next((v for k, v in equals.items() if isinstance(k, str) and k.endswith(f":{suffix}")), None)


def _is_github(statement: Mapping[str, Any]) -> bool:
    conditions = _at(statement, "Condition") or {}
    keys = [k for op in conditions.values() if isinstance(op, Mapping) for k in op]
    return any(isinstance(k, str) and k.startswith(f"{GITHUB_OIDC}:") for k in keys)


@rule(
    "SY-AWS-019",
    "A role the cluster's service accounts assume (IRSA) trusts one service account, for STS only.",
    target=ROLE,
    needs_resources=True,
    references=("checkov:CKV_AWS_358",),
    hint="pin StringEquals on <issuer>:sub to system:serviceaccount:<namespace>:<name> and <issuer>:aud to "
    "sts.amazonaws.com; never StringLike or a wildcard",
)
def irsa_trust_pinned(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for role, statement, problem in _web_identity_trusts(ctx):
        if problem is not None:
            yield problem
            continue
        assert statement is not None
        if _is_github(statement):
            continue  # the CI roles: SY-AWS-020
        sub, aud = _pinned(statement, "sub"), _pinned(statement, "aud")
        if _unknown(sub) or _unknown(aud):
            yield _cannot_verify(role, "assumeRolePolicy", "a trust pinned to one service account")
        elif not (isinstance(sub, str) and _SERVICE_ACCOUNT.match(sub)):
            yield _finding(
                role,
                "assumeRolePolicy",
                got=f"a web-identity trust with sub {sub!r}",
                expected="StringEquals <issuer>:sub = system:serviceaccount:<namespace>:<name>",
            )
        elif aud != STS:
            yield _finding(
                role, "assumeRolePolicy", got=f"a web-identity trust with aud {aud!r}", expected=f"aud = {STS}"
            )


#: The subjects a GitHub OIDC token of a repository carries: a job of a GitHub Environment, a pull request, a branch.
_GITHUB_SUBJECT = re.compile(r"repo:([^*?/:]+/[^*?:]+):(environment:[^*?:]+|pull_request|ref:refs/heads/main)")
#: AWS managed policies that only read.
_READ_ONLY_MANAGED = frozenset(
    {"arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"}
)
_READ_ACTION = re.compile(r"[a-z0-9-]+:(Get|List|Describe|BatchGet|View)[A-Za-z]*|kms:Decrypt")


@rule(
    "SY-AWS-020",
    "A role GitHub Actions assume is this repository's: the deploy role only for the stack's GitHub Environment, "
    "pull requests and main only on a read-only role.",
    target=ROLE,
    needs_resources=True,
    references=("checkov:CKV_AWS_358",),
    hint="pin StringEquals on token.actions.githubusercontent.com:sub to repo:<org>/<repo>:environment:<stack> for "
    "the deploy role (jobs with `environment: <stack>`), or to repo:<org>/<repo>:pull_request and "
    ":ref:refs/heads/main for a role that only reads (ReadOnlyAccess; Get/List/Describe, kms:Decrypt), and :aud "
    "to sts.amazonaws.com: a pull request's workflow must never assume a role that writes",
)
def ci_role_trust(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for role, statement, problem in _web_identity_trusts(ctx):
        if problem is not None or statement is None or not _is_github(statement):
            continue  # an unreadable trust is SY-AWS-019's finding
        sub, aud = _pinned(statement, "sub"), _pinned(statement, "aud")
        repository = _stack_repository(ctx, role.scope)
        repo = repository or "<org>/<repo>"
        wanted = f"repo:{repo}:environment:{role.scope}, or repo:{repo}:pull_request / :ref:refs/heads/main (read only)"
        subjects = sub if isinstance(sub, list) else [sub]
        matches = [_GITHUB_SUBJECT.fullmatch(s) if isinstance(s, str) else None for s in subjects]
        kinds = {m.group(2) for m in matches if m is not None}
        if _unknown(sub) or any(_unknown(s) for s in subjects) or _unknown(aud):
            yield _cannot_verify(role, "assumeRolePolicy", wanted)
        elif not subjects or not all(matches):
            yield _finding(role, "assumeRolePolicy", got=f"a GitHub trust with sub {sub!r}", expected=wanted)
        elif repository is not None and any(m is not None and m.group(1) != repository for m in matches):
            yield _finding(role, "assumeRolePolicy", got=f"a GitHub trust for {sub!r}", expected=wanted)
        elif any(k.startswith("environment:") and k != f"environment:{role.scope}" for k in kinds):
            yield _finding(
                role, "assumeRolePolicy", got=f"a GitHub trust for {sub!r} in stack {role.scope}", expected=wanted
            )
        elif aud != STS:
            yield _finding(role, "assumeRolePolicy", got=f"a GitHub trust with aud {aud!r}", expected=f"aud = {STS}")
        elif kinds - {f"environment:{role.scope}"}:
            writes = _beyond_read(ctx, role)
            if writes:
                yield _finding(
                    role,
                    "assumeRolePolicy",
                    got=f"pull requests or main may assume a role that can {writes}",
                    expected="read-only permissions on a role trusted for pull_request or main "
                    "(a deploy role trusts its GitHub Environment only)",
                )


def _beyond_read(ctx: PolicyContext, role: Resource) -> str:
    """The first permission of ``role`` that is more than reading ('' when there is none): its managed
    policies (attachments parented to it or naming it, ``managedPolicyArns``) and its inline policies."""
    mine = f"{role.kind}::{role.name}"
    named = _inputs(role).get("name")

    def attached(resource: Resource) -> bool:
        if resource.scope != role.scope:
            return False
        parent = resource.body.get("parent")
        if isinstance(parent, str) and parent and _ref(parent) == mine:
            return True
        return isinstance(named, str) and not _unknown(named) and _inputs(resource).get("role") == named

    arns = [*_list(_inputs(role).get("managedPolicyArns"))]
    arns += [_inputs(a).get("policyArn") for a in _of(ctx, ROLE_POLICY_ATTACHMENT) if attached(a)]
    for arn in arns:
        if arn not in _READ_ONLY_MANAGED:
            return f"use {arn!r}"
    documents = [_inputs(p).get("policy") for p in _of(ctx, ROLE_POLICY) if attached(p)]
    documents += [_at(inline, "policy") for inline in _list(_inputs(role).get("inlinePolicies"))]
    for value in documents:
        document, problem = _document(role, "policy", value)
        if problem is not None or document is None:
            return "do what an unreadable policy allows"
        for statement in _statements(document):
            if statement.get("Effect") != "Allow":
                continue
            for action in _list(statement.get("Action")) or ["*"]:
                if not (isinstance(action, str) and _READ_ACTION.fullmatch(action)):
                    return f"{action}"
    return ""


def _stack_repository(ctx: PolicyContext, stack: str) -> str | None:
    """The ``repository: <org>/<repo>`` the stack's config names (None when it cannot be read)."""
    if ctx.root is None:
        return None
    path = ctx.root / f"Pulumi.{stack}.yaml"
    if linked(ctx.root, path) is not None or not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.strip().partition(":")
        if key == "repository" and value.strip():
            return value.split("#", 1)[0].strip().strip("'\"")
    return None
