"""The repository's AWS rules (``policies/aws.py``): for every rule a passing and a failing fixture, values
unknown at preview failing closed, the template's own infra passing every mandatory rule, and a mutation
check that each failing fixture really depends on its rule's check."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from conftest import REPO_ROOT
from shipyard.core.policies import run_policies
from shipyard.engine.policies import repository_policies
from shipyard.planes.infra import evaluate_stacks, resource_of
from shipyard.planes.infra.stack import stacks
from shipyard.sdk import Diagnostic, Policy, PolicyContext, Resource, Severity, SourcePosition, SpecSet

RULES: dict[str, Policy] = {p.id: p for p, file in repository_policies(REPO_ROOT) if file == "policies/aws.py"}
UNKNOWN = "(known after apply)"
TAGS = {"team": "platform", "cost-center": "CC-1000", "env": "dev", "managed-by": "shipyard"}

BUCKET = "aws:s3/bucket:Bucket"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
EFS = "aws:efs/fileSystem:FileSystem"
CLUSTER = "aws:eks/cluster:Cluster"
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
KMS = "aws:kms/key:Key"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
RDS = "aws:rds/instance:Instance"


def res(
    kind: str,
    name: str,
    inputs: Mapping[str, Any],
    *,
    scope: str = "dev",
    parent: str = "",
    source: SourcePosition | None = None,
) -> Resource:
    body: dict[str, Any] = {"inputs": dict(inputs)}
    if parent:
        body["parent"] = parent
    return Resource("infra", kind, scope, name, body, source)


# --- fixtures, as the infra program writes them -------------------------------------------------------------


def doc(*statements: Mapping[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


TLS_DENY = {
    "Sid": "TLSOnly",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}
OF_BUCKET = f"{BUCKET}::data"


def bucket(**extra: Any) -> Resource:
    return res(BUCKET, "data", {"bucketPrefix": "shipyard-dev-data-", "tags": TAGS, **extra})


def sse(algorithm: Any = "aws:kms") -> Resource:
    default = {"sseAlgorithm": algorithm, "kmsMasterKeyId": "arn:aws:kms:::key/k"}
    rules = [{"applyServerSideEncryptionByDefault": default, "bucketKeyEnabled": True}]
    return res(SSE, "data", {"bucket": "data-id", "rules": rules}, parent=OF_BUCKET)


def pab(**flags: Any) -> Resource:
    inputs: dict[str, Any] = {"blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True}
    inputs |= {"restrictPublicBuckets": True, "bucket": "data-id"} | flags
    return res(PAB, "data", inputs, parent=OF_BUCKET)


def bucket_policy(policy: Any = None) -> Resource:
    return res(BUCKET_POLICY, "data", {"bucket": "data-id", "policy": policy or doc(TLS_DENY)}, parent=OF_BUCKET)


def versioning(status: Any = "Enabled") -> Resource:
    inputs = {"bucket": "data-id", "versioningConfiguration": {"status": status}}
    return res(VERSIONING, "data", inputs, parent=f"urn:pulumi:dev::shipyard::shipyard:infra:Storage${BUCKET}::data")


def s3(**replaced: Resource | None) -> list[Resource]:
    """A bucket with everything it needs; ``replaced`` swaps (or, with None, drops) one companion."""
    parts = {"sse": sse(), "pab": pab(), "policy": bucket_policy(), "versioning": versioning()} | replaced
    return [bucket(), *(r for r in parts.values() if r is not None)]


def template(**inputs: Any) -> Resource:
    ebs = {"encrypted": "true", "kmsKeyId": "arn:aws:kms:::key/k", "volumeSize": 100.0, "volumeType": "gp3"}
    base = {
        "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": ebs}],
        "metadataOptions": {"httpEndpoint": "enabled", "httpPutResponseHopLimit": 1.0, "httpTokens": "required"},
        "tags": TAGS,
    }
    return res(LAUNCH_TEMPLATE, "node-pools-system", base | inputs)


def ebs(encrypted: Any) -> list[dict[str, Any]]:
    return [{"deviceName": "/dev/xvda", "ebs": {"encrypted": encrypted, "volumeSize": 100.0}}]


def node_group(**inputs: Any) -> Resource:
    base = {"clusterName": "c", "launchTemplate": {"id": "lt-id", "version": "1"}, "tags": TAGS}
    return res(NODE_GROUP, "node-pools-system", {k: v for k, v in (base | inputs).items() if v is not None})


def efs(**inputs: Any) -> Resource:
    return res(
        EFS, "storage-training-data", {"encrypted": True, "kmsKeyId": "arn:aws:kms:::key/k", "tags": TAGS} | inputs
    )


def cluster(scope: str = "dev", **inputs: Any) -> Resource:
    base = {
        "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
        "encryptionConfig": {"provider": {"keyArn": "arn:aws:kms:::key/k"}, "resources": ["secrets"]},
        "vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": False, "subnetIds": ["a", "b"]},
        "tags": TAGS,
    }
    return res(CLUSTER, "cluster", base | inputs, scope=scope)


def public_endpoint(*cidrs: str) -> dict[str, Any]:
    return {"endpointPrivateAccess": True, "endpointPublicAccess": True, "publicAccessCidrs": list(cidrs)}


def sg(*ingress: Mapping[str, Any]) -> Resource:
    return res(SG, "addons-mlflow-db", {"description": "db", "ingress": list(ingress), "tags": TAGS, "vpcId": "v"})


def ingress(**sources: Any) -> dict[str, Any]:
    return {"fromPort": 5432.0, "toPort": 5432.0, "protocol": "tcp"} | sources


def kms(**inputs: Any) -> Resource:
    return res(KMS, "shipyard-dev", {"enableKeyRotation": True, "deletionWindowInDays": 30.0, "tags": TAGS} | inputs)


S3_READ = {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::data/*"}
KMS_VIA_S3 = {
    "Effect": "Allow",
    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
    "Resource": "*",
    "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
}
DENY_USERS = {"Effect": "Deny", "Action": ["iam:CreateUser"], "Resource": "*"}
TRUST_ANYTHING = doc({"Effect": "Allow", "Action": "*", "Principal": {"Service": "eks.amazonaws.com"}})


def role_policy(*statements: Mapping[str, Any]) -> Resource:
    return res(ROLE_POLICY, "iam-mlflow", {"policy": doc(*statements), "role": "iam-mlflow-id"})


def web_identity(issuer: str, equals: Mapping[str, Any], operator: str = "StringEquals") -> str:
    return doc(
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{issuer}"},
            "Condition": {operator: {f"{issuer}:{k}": v for k, v in equals.items()}},
        }
    )


IRSA = "oidc.eks.us-east-1.amazonaws.com/id/ABC"
GITHUB = "token.actions.githubusercontent.com"
MAIN = "repo:shipyard-dev/shipyard:ref:refs/heads/main"
PULL_REQUEST = "repo:shipyard-dev/shipyard:pull_request"
DEPLOY = "repo:shipyard-dev/shipyard:environment:dev"


def role(**inputs: Any) -> Resource:
    return res(ROLE, "iam-mlflow", {"assumeRolePolicy": TRUST_ANYTHING, "tags": TAGS} | inputs)


def rds(scope: str = "dev", **inputs: Any) -> Resource:
    base = {
        "engine": "postgres",
        "storageEncrypted": True,
        "publiclyAccessible": False,
        "deletionProtection": True,
        "tags": TAGS | {"env": scope},
    }
    return res(RDS, "addons-mlflow", base | inputs, scope=scope)


@dataclass(frozen=True)
class Case:
    """A rule's fixtures: ``passing`` yields nothing; ``failing`` yields findings whose text holds ``says``."""

    passing: Sequence[Resource]
    failing: Sequence[Resource]
    says: str
    subject: str = ""  # the key the first finding is about (default: the failing fixture's last Resource)
    also_passing: Sequence[Sequence[Resource]] = field(default_factory=tuple)


CASES: dict[str, Case] = {
    "SY-AWS-001": Case(
        s3(),
        s3(sse=sse("AES256")),
        "AES256",
        subject=sse().key,
        also_passing=[
            [
                bucket(
                    serverSideEncryptionConfiguration={
                        "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}
                    }
                )
            ]
        ],
    ),
    "SY-AWS-002": Case(s3(), s3(pab=pab(restrictPublicBuckets=False)), "restrictPublicBuckets", subject=pab().key),
    "SY-AWS-003": Case(
        s3(),
        s3(policy=bucket_policy(doc(S3_READ | {"Principal": "*"}))),
        "no statement denying requests without TLS",
        subject=bucket_policy().key,
    ),
    "SY-AWS-004": Case(s3(), s3(versioning=versioning("Suspended")), "Suspended", subject=versioning().key),
    "SY-AWS-005": Case(
        [template(), node_group()],
        [template(blockDeviceMappings=ebs("false"))],
        "blockDeviceMappings[0].ebs.encrypted",
        also_passing=[[template(blockDeviceMappings=ebs(True))]],
    ),
    "SY-AWS-006": Case([efs()], [efs(encrypted=False)], "inputs.encrypted"),
    "SY-AWS-007": Case(
        [template()],
        [template(metadataOptions={"httpTokens": "optional", "httpPutResponseHopLimit": 1})],
        "IMDSv2",
        also_passing=[[template(metadataOptions={"httpEndpoint": "disabled"})]],
    ),
    "SY-AWS-008": Case(
        [cluster()],
        [cluster(vpcConfig=public_endpoint("203.0.113.0/24", "0.0.0.0/0"))],
        "0.0.0.0/0 (the whole internet)",
        also_passing=[[cluster(vpcConfig=public_endpoint("203.0.113.0/24"))]],
    ),
    "SY-AWS-009": Case([cluster()], [cluster(encryptionConfig=None)], "no encryption config for secrets"),
    "SY-AWS-010": Case(
        [cluster()], [cluster(enabledClusterLogTypes=["api", "audit"])], "missing authenticator, controllerManager"
    ),
    "SY-AWS-011": Case(
        [sg(ingress(cidrBlocks=["10.20.0.0/16"]))],
        [sg(ingress(cidrBlocks=["10.20.0.0/16"]), ingress(ipv6CidrBlocks=["::/0"]))],
        "ingress from ::/0",
    ),
    "SY-AWS-012": Case(
        [kms()],
        [kms(enableKeyRotation=False)],
        "enableKeyRotation",
        also_passing=[[kms(enableKeyRotation=False, customerMasterKeySpec="RSA_2048")]],
    ),
    "SY-AWS-013": Case(
        [role_policy(S3_READ, KMS_VIA_S3, DENY_USERS), role()],
        [role_policy(S3_READ, {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::data"})],
        'Allow on Action "*"',
    ),
    "SY-AWS-014": Case(
        [role_policy(S3_READ, KMS_VIA_S3, DENY_USERS), role()],
        [role_policy(S3_READ, {"Effect": "Allow", "Action": ["iam:CreateRole"], "Resource": "*"})],
        'Allow on Resource "*" with no Condition',
    ),
    "SY-AWS-015": Case(
        [rds()],
        [rds(storageEncrypted=False)],
        "storageEncrypted",
        also_passing=[[rds(storageEncrypted=False, replicateSourceDb="primary")]],
    ),
    "SY-AWS-016": Case([rds()], [rds(publiclyAccessible=True)], "publiclyAccessible"),
    "SY-AWS-017": Case(
        [rds("prod")],
        [rds("prod", deletionProtection=False)],
        "on the prod stack",
        also_passing=[[rds("dev", deletionProtection=False)]],
    ),
    "SY-AWS-018": Case(
        [bucket(), sse(), pab(), kms(), role_policy(S3_READ)],
        [kms(tags={"team": "platform", "env": "dev"})],
        "no cost-center tag",
        also_passing=[
            [
                res("pulumi:providers:aws", "default-tags", {"defaultTags": {"tags": TAGS}}),
                kms(tags={"Name": "k"}),
            ]
        ],
    ),
    "SY-AWS-019": Case(
        [
            role(
                assumeRolePolicy=web_identity(
                    IRSA, {"sub": "system:serviceaccount:mlflow:mlflow", "aud": "sts.amazonaws.com"}
                )
            )
        ],
        [role(assumeRolePolicy=web_identity(IRSA, {"sub": "system:serviceaccount:*:*"}, "StringLike"))],
        "a web-identity trust with sub None",
        also_passing=[[role(assumeRolePolicy=web_identity(GITHUB, {"sub": MAIN, "aud": "sts.amazonaws.com"}))]],
    ),
    "SY-AWS-020": Case(
        [role(assumeRolePolicy=web_identity(GITHUB, {"sub": DEPLOY, "aud": "sts.amazonaws.com"}))],
        [
            role(assumeRolePolicy=web_identity(GITHUB, {"sub": [PULL_REQUEST, MAIN], "aud": "sts.amazonaws.com"})),
            res(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                "iam-mlflow",
                {"role": "r", "policyArn": "arn:aws:iam::aws:policy/PowerUserAccess"},
                parent=f"{ROLE}::iam-mlflow",
            ),
        ],
        "pull requests or main may assume a role that can use 'arn:aws:iam::aws:policy/PowerUserAccess'",
        subject="infra/dev/aws:iam/role:Role/iam-mlflow",
        also_passing=[
            [role(assumeRolePolicy=web_identity(IRSA, {"sub": "system:serviceaccount:a:b", "aud": "x"}))],
            [  # the read role
                role(assumeRolePolicy=web_identity(GITHUB, {"sub": [PULL_REQUEST, MAIN], "aud": "sts.amazonaws.com"})),
                res(
                    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                    "iam-mlflow",
                    {"role": "r", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
                    parent=f"{ROLE}::iam-mlflow",
                ),
                res(
                    ROLE_POLICY,
                    "iam-mlflow-state",
                    {"role": "r", "policy": doc({"Effect": "Allow", "Action": ["s3:GetObject", "kms:Decrypt"]})},
                    parent=f"{ROLE}::iam-mlflow",
                ),
            ],
        ],
    ),
}


def findings(policy: Policy, resources: Sequence[Resource]) -> list[Diagnostic]:
    return list(policy.check(PolicyContext(SpecSet(), list(resources))))


def assert_catches(policy: Policy, case: Case) -> None:
    """The failing fixture yields at least one finding saying what is wrong, about the right Resource, at its
    stack's file."""
    found = findings(policy, case.failing)
    assert found, f"{policy.id} found nothing in its failing fixture"
    texts = [f"{d.key_path} {d.message}" for d in found]
    assert any(case.says in t for t in texts), texts
    subject = case.subject or case.failing[-1].key
    assert subject in [d.subject for d in found]
    first = next(d for d in found if d.subject == subject)
    assert first.position == SourcePosition(f"Pulumi.{case.failing[-1].scope}.yaml", 1, 1)


# --- the rules ---------------------------------------------------------------------------------------------


def test_every_rule_has_a_case_references_and_a_hint() -> None:
    assert set(RULES) == set(CASES)
    assert sum(p.mandatory for p in RULES.values()) >= 14
    for policy in RULES.values():
        assert policy.needs_resources, policy.id
        assert policy.references, policy.id
        assert policy.hint, policy.id
        assert all(r.split(":", 1)[0] in {"checkov", "awsguard", "aws-config"} for r in policy.references)


def test_only_the_unscoped_resource_rule_and_no_other_is_advisory() -> None:
    assert [p.id for p in RULES.values() if not p.mandatory] == ["SY-AWS-014"]


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_a_compliant_fixture_passes(rule_id: str) -> None:
    case = CASES[rule_id]
    for resources in (case.passing, *case.also_passing):
        assert findings(RULES[rule_id], resources) == [], resources


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_a_violating_fixture_is_caught(rule_id: str) -> None:
    assert_catches(RULES[rule_id], CASES[rule_id])


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_a_rule_whose_check_does_nothing_fails_its_fixture(rule_id: str) -> None:
    """Mutation: with the check replaced by one that yields nothing, the failing fixture's assertion fails."""

    def nothing(ctx: PolicyContext) -> Iterator[Diagnostic]:
        yield from ()

    with pytest.raises(AssertionError):
        assert_catches(replace(RULES[rule_id], check=nothing), CASES[rule_id])


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_the_runner_gives_each_finding_the_rules_id_and_enforcement(rule_id: str) -> None:
    policy = RULES[rule_id]
    found = run_policies([policy], SpecSet(), list(CASES[rule_id].failing))
    assert found
    assert {d.rule for d in found} == {rule_id}
    assert {d.severity for d in found} == {Severity.ERROR if policy.mandatory else Severity.WARNING}


def test_a_finding_points_at_the_resources_source_when_it_has_one() -> None:
    where = SourcePosition("Pulumi.dev.yaml", 12, 7)
    (found,) = findings(RULES["SY-AWS-012"], [replace(kms(enableKeyRotation=False), source=where)])
    assert found.position == where


def test_a_bucket_without_its_companions_is_caught_on_the_bucket() -> None:
    for rule_id, dropped in (
        ("SY-AWS-001", "sse"),
        ("SY-AWS-002", "pab"),
        ("SY-AWS-003", "policy"),
        ("SY-AWS-004", "versioning"),
    ):
        found = findings(RULES[rule_id], s3(**{dropped: None}))
        assert [d.subject for d in found] == [bucket().key], rule_id


def test_companions_of_another_stacks_bucket_do_not_count() -> None:
    elsewhere = [replace(r, scope="prod") for r in s3()[1:]]
    assert findings(RULES["SY-AWS-002"], [bucket(), *elsewhere])


def test_an_open_security_group_rule_resource_is_caught_too() -> None:
    open_rule = res(SG_RULE, "ssh", {"type": "ingress", "cidrBlocks": ["0.0.0.0/0"], "fromPort": 22, "toPort": 22})
    egress = res(SG_RULE, "out", {"type": "egress", "cidrBlocks": ["0.0.0.0/0"], "fromPort": 0, "toPort": 0})
    assert [d.subject for d in findings(RULES["SY-AWS-011"], [open_rule, egress])] == [open_rule.key]


def test_a_public_endpoint_without_cidrs_is_open_to_everyone() -> None:
    (found,) = findings(RULES["SY-AWS-008"], [cluster(vpcConfig={"endpointPublicAccess": True})])
    assert "open to 0.0.0.0/0" in found.message


def test_trust_policies_are_not_identity_policies() -> None:
    assert findings(RULES["SY-AWS-013"], [role()]) == []
    inline = role(inlinePolicies=[{"name": "x", "policy": doc({"Effect": "Allow", "Action": "*", "Resource": "*"})}])
    assert findings(RULES["SY-AWS-013"], [inline])


# --- fail closed -------------------------------------------------------------------------------------------

UNKNOWNS: dict[str, list[Resource]] = {
    "SY-AWS-001": s3(sse=sse(UNKNOWN)),
    "SY-AWS-002": s3(pab=pab(blockPublicPolicy=UNKNOWN)),
    "SY-AWS-003": s3(policy=res(BUCKET_POLICY, "data", {"bucket": UNKNOWN, "policy": UNKNOWN}, parent=OF_BUCKET)),
    "SY-AWS-004": s3(versioning=versioning(UNKNOWN)),
    "SY-AWS-005": [template(blockDeviceMappings=ebs(UNKNOWN))],
    "SY-AWS-006": [efs(encrypted=UNKNOWN)],
    "SY-AWS-007": [template(metadataOptions=UNKNOWN)],
    "SY-AWS-008": [cluster(vpcConfig=public_endpoint(UNKNOWN))],
    "SY-AWS-009": [cluster(encryptionConfig=UNKNOWN)],
    "SY-AWS-010": [cluster(enabledClusterLogTypes=UNKNOWN)],
    "SY-AWS-011": [sg(ingress(cidrBlocks=[UNKNOWN]))],
    "SY-AWS-012": [kms(enableKeyRotation=UNKNOWN)],
    "SY-AWS-013": [res(ROLE_POLICY, "iam-mlflow", {"policy": UNKNOWN, "role": "r"})],
    "SY-AWS-014": [res(ROLE_POLICY, "iam-mlflow", {"policy": UNKNOWN, "role": "r"})],
    "SY-AWS-015": [rds(storageEncrypted=UNKNOWN)],
    "SY-AWS-016": [rds(publiclyAccessible=UNKNOWN)],
    "SY-AWS-017": [rds("prod", deletionProtection=UNKNOWN)],
    "SY-AWS-018": [kms(tags=UNKNOWN)],
    "SY-AWS-019": [role(assumeRolePolicy=UNKNOWN)],
    "SY-AWS-020": [role(assumeRolePolicy=web_identity(GITHUB, {"sub": UNKNOWN, "aud": "sts.amazonaws.com"}))],
}


def test_every_rule_has_an_unknown_fixture() -> None:
    assert set(UNKNOWNS) == set(RULES)


@pytest.mark.parametrize("rule_id", sorted(UNKNOWNS))
def test_a_value_unknown_at_preview_cannot_be_verified_and_still_counts(rule_id: str) -> None:
    found = run_policies([RULES[rule_id]], SpecSet(), UNKNOWNS[rule_id])
    assert any("cannot verify until apply" in d.message for d in found), found
    if RULES[rule_id].mandatory:
        assert any(d.severity is Severity.ERROR for d in found)


def test_the_unknown_marker_is_the_one_the_preview_writes() -> None:
    from pulumi.runtime.rpc import UNKNOWN as WIRE_UNKNOWN

    from shipyard.planes.infra import preview

    assert preview.KNOWN_AFTER_APPLY == UNKNOWN
    assert preview._known({"a": [WIRE_UNKNOWN]}) == {"a": [UNKNOWN]}
    assert findings(RULES["SY-AWS-012"], [kms(enableKeyRotation=WIRE_UNKNOWN)])  # the raw wire value, too


# --- the template ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template_resources() -> list[Resource]:
    """Every stack's resources as the infra plane plans them under mocks (a base plan)."""
    chosen = stacks(REPO_ROOT)
    graphs = evaluate_stacks(REPO_ROOT, chosen)
    return [resource_of(stack, item) for stack in chosen for item in graphs[stack]]


def test_the_templates_infra_passes_every_mandatory_aws_rule(template_resources: list[Resource]) -> None:
    assert {r.scope for r in template_resources} == {"dev", "prod", "staging"}
    kinds = {r.kind for r in template_resources}
    assert {
        BUCKET,
        PAB,
        SSE,
        VERSIONING,
        BUCKET_POLICY,
        LAUNCH_TEMPLATE,
        EFS,
        CLUSTER,
        SG,
        KMS,
        ROLE_POLICY,
        RDS,
    } <= kinds
    mandatory = [p for p in RULES.values() if p.mandatory]
    found = run_policies(mandatory, SpecSet(), template_resources)
    assert found == [], "\n".join(d.headline for d in found)


def test_the_templates_only_advisory_finding_is_the_ci_roles_iam_grant(template_resources: list[Resource]) -> None:
    found = run_policies([RULES["SY-AWS-014"]], SpecSet(), template_resources)
    assert {d.subject for d in found} == {
        f"infra/{stack}/{ROLE_POLICY}/iam-ci-deploy-roles" for stack in ("dev", "prod", "staging")
    }
