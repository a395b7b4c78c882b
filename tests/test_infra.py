"""The infra plane: every stack's Pulumi program under mocks (what matters asserted, the graph against a golden
file), bad stack config at its line, a PR's plan with the cost delta, and a clear refusal without the Pulumi CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT, Result, commit, edit, example_repo
from shipyard.planes.infra import evaluate_stacks
from shipyard.planes.infra.stack import load_stack, stacks
from shipyard.sdk import SpecError
from test_render import golden

STACKS = ("dev", "prod", "staging")
Graph = list[dict[str, Any]]


@pytest.fixture(scope="module")
def graphs() -> dict[str, Graph]:
    assert stacks(REPO_ROOT) == list(STACKS)
    return evaluate_stacks(REPO_ROOT, list(STACKS))


def of_type(graph: Graph, type_token: str) -> list[dict[str, Any]]:
    return [r["inputs"] for r in graph if r["type"] == type_token]


def policy_of(inputs: dict[str, Any], field: str = "policy") -> dict[str, Any]:
    document: dict[str, Any] = json.loads(inputs[field])
    return document


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_pools_are_tainted_capped_on_nvidia_images_and_imdsv2_only(graphs: dict[str, Graph], stack: str) -> None:
    groups = {g["nodeGroupName"]: g for g in of_type(graphs[stack], "aws:eks/nodeGroup:NodeGroup")}
    config = load_stack(REPO_ROOT, stack)
    assert set(groups) == {p.name for p in config.node_pools}
    for pool in config.node_pools:
        group = groups[pool.name]
        if pool.is_gpu:
            assert group["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
            assert "NVIDIA" in group["amiType"]
            assert group["labels"]["shipyard.dev/accelerator"].startswith("nvidia-")
            assert group["scalingConfig"]["maxSize"] == pool.max
        else:
            assert "taints" not in group
    for template in of_type(graphs[stack], "aws:ec2/launchTemplate:LaunchTemplate"):
        assert template["metadataOptions"]["httpTokens"] == "required"
        assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert template["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"


@pytest.mark.parametrize("stack", STACKS)
def test_buckets_are_private_encrypted_versioned_and_tls_only(graphs: dict[str, Graph], stack: str) -> None:
    graph = graphs[stack]
    buckets = of_type(graph, "aws:s3/bucket:Bucket")
    assert len(buckets) == 4
    for blocks in of_type(graph, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
            assert blocks[flag] is True
    encryption = of_type(
        graph, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    for config in encryption:
        rule = config["rules"][0]
        assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        assert rule["bucketKeyEnabled"] is True
    versioning = of_type(graph, "aws:s3/bucketVersioning:BucketVersioning")
    assert [v["versioningConfiguration"]["status"] for v in versioning] == ["Enabled"] * 4
    for found in of_type(graph, "aws:s3/bucketPolicy:BucketPolicy"):
        (statement,) = policy_of(found)["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert (
        len(encryption)
        == len(versioning)
        == len(of_type(graph, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"))
        == 4
    )


@pytest.mark.parametrize("stack", STACKS)
def test_the_cluster_endpoint_is_private_and_secrets_encrypted(graphs: dict[str, Graph], stack: str) -> None:
    (cluster,) = of_type(graphs[stack], "aws:eks/cluster:Cluster")
    vpc = cluster["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    allowed = load_stack(REPO_ROOT, stack).cluster.public_access_cidrs
    assert vpc["endpointPublicAccess"] is bool(allowed)
    assert vpc.get("publicAccessCidrs", []) == allowed
    assert "0.0.0.0/0" not in vpc.get("publicAccessCidrs", [])
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    assert {"api", "audit", "authenticator"} <= set(cluster["enabledClusterLogTypes"])
    addons = {a["addonName"] for a in of_type(graphs[stack], "aws:eks/addon:Addon")}
    assert addons == {"vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver"}


@pytest.mark.parametrize("stack", STACKS)
def test_subnets_spread_over_three_azs_and_nothing_is_open_to_the_internet(
    graphs: dict[str, Graph], stack: str
) -> None:
    graph = graphs[stack]
    subnets = of_type(graph, "aws:ec2/subnet:Subnet")
    private = [s for s in subnets if "internal-elb" in json.dumps(s["tags"])]
    assert len({s["availabilityZone"] for s in private}) >= 3
    assert not any(s.get("mapPublicIpOnLaunch") for s in subnets)
    nats = of_type(graph, "aws:ec2/natGateway:NatGateway")
    assert len(nats) == (3 if stack == "prod" else 1)  # one per AZ in prod, shared elsewhere
    for group in of_type(graph, "aws:ec2/securityGroup:SecurityGroup"):
        for rule in group.get("ingress", []):
            assert "0.0.0.0/0" not in rule.get("cidrBlocks", []), group["description"]
    assert of_type(graph, "aws:ec2/flowLog:FlowLog")[0]["trafficType"] == "ALL"
    endpoints = {e["serviceName"].rsplit(".", 1)[-1] for e in of_type(graph, "aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert {"s3", "api", "dkr", "sts"} <= endpoints
    (database,) = of_type(graph, "aws:rds/instance:Instance")
    assert database["storageEncrypted"] is True
    assert database["publiclyAccessible"] is False
    assert "password" not in database
    assert database["manageMasterUserPassword"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_every_aws_resource_that_takes_tags_has_team_cost_center_and_env(graphs: dict[str, Graph], stack: str) -> None:
    tagged = [r for r in graphs[stack] if r["type"].startswith("aws:") and "tags" in r["inputs"]]
    assert len(tagged) > 40
    for resource in tagged:
        assert {"team", "cost-center", "env"} <= set(resource["inputs"]["tags"]), resource["name"]
        assert resource["inputs"]["tags"]["env"] == stack
    # The types that must carry tags, whatever a future edit does.
    for must in ("aws:eks/cluster:Cluster", "aws:eks/nodeGroup:NodeGroup", "aws:s3/bucket:Bucket", "aws:ec2/vpc:Vpc"):
        assert all("tags" in r for r in of_type(graphs[stack], must)), must


@pytest.mark.parametrize("stack", STACKS)
def test_roles_trust_only_their_service_account_or_this_repositorys_main_branch(
    graphs: dict[str, Graph], stack: str
) -> None:
    trusts = [policy_of(r, "assumeRolePolicy")["Statement"][0] for r in of_type(graphs[stack], "aws:iam/role:Role")]
    web = [t for t in trusts if t["Action"] == "sts:AssumeRoleWithWebIdentity"]
    assert len(web) >= 7  # MLflow, KFP, KServe, Feast, EBS CSI, each team, CI
    for trust in web:
        pinned = trust["Condition"]["StringEquals"]
        assert any(k.endswith(":aud") for k in pinned)
        assert any(k.endswith(":sub") for k in pinned)
        sub = next(v for k, v in pinned.items() if k.endswith(":sub"))
        assert sub.startswith("system:serviceaccount:") or sub == "repo:shipyard-dev/shipyard:ref:refs/heads/main"
    kserve = next(
        r for r in graphs[stack] if r["name"] == "iam-kserve" and r["type"] == "aws:iam/rolePolicy:RolePolicy"
    )
    actions = {
        a
        for s in policy_of(kserve["inputs"])["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert "s3:PutObject" not in actions  # serving only reads models


@pytest.mark.parametrize("stack", STACKS)
def test_each_team_gets_a_restricted_namespace_and_a_gpu_quota(graphs: dict[str, Graph], stack: str) -> None:
    namespaces = of_type(graphs[stack], "kubernetes:core/v1:Namespace")
    assert {n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for n in namespaces} == {"restricted"}
    quotas = {
        q["metadata"]["namespace"]: q["spec"]["hard"]
        for q in of_type(graphs[stack], "kubernetes:core/v1:ResourceQuota")
    }
    assert quotas["fraud"]["requests.nvidia.com/gpu"] == "4"
    assert quotas["recsys-ml"]["requests.nvidia.com/gpu"] == "8"
    policies = of_type(graphs[stack], "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    assert sum(p["metadata"]["name"] == "default-deny" for p in policies) == 2
    releases = {r["name"]: r["version"] for r in of_type(graphs[stack], "kubernetes:helm.sh/v3:Release")}
    assert set(releases) == {
        "nvidia-device-plugin",
        "cert-manager",
        "kserve",
        "kubeflow-pipelines",
        "mlflow",
        "feast-feature-server",
    }


def test_the_dev_resource_graph_matches_its_golden_file(graphs: dict[str, Graph]) -> None:
    """Names, parents and dependencies: a refactor that moves or renames a resource shows up here."""
    lines = []
    for resource in graphs["dev"]:
        parent = resource["parent"].rpartition("::")[2]
        depends = sorted(d.rpartition("::")[2] for d in resource["dependencies"])
        lines.append(f"{resource['type']}::{resource['name']}  parent={parent}  deps={','.join(depends)}")
    golden("infra-dev-graph.txt", "\n".join(sorted(lines)) + "\n")  # registration order is async


def infra_repo(where: Path) -> Path:
    root = example_repo(where)
    shutil.copytree(REPO_ROOT / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    for stack in STACKS:
        shutil.copy(REPO_ROOT / f"Pulumi.{stack}.yaml", root)
    shutil.copy(REPO_ROOT / "Pulumi.yaml", root)
    commit(root, "infra")
    return root


GPU_POOL = """      - name: gpu-h100
        instanceTypes: [p5.48xlarge]
        ami: AL2023_x86_64_NVIDIA
        min: 0
        max: 1
        efa: true
    gpuCeiling: 48"""


def test_a_pr_adding_a_gpu_pool_plans_its_node_group_launch_template_and_cost(
    shipyard: Callable[..., Result], tmp_path: Path
) -> None:
    root = infra_repo(tmp_path)
    edit(root, "Pulumi.prod.yaml", "    gpuCeiling: 48", GPU_POOL)
    commit(root, "prod: an H100 pool")

    result = shipyard("plan", "--target", "base:HEAD~1", "--format", "json", repo=root)

    assert result.code == 0, result.err
    changes = {c["key"]: c for c in json.loads(result.out)["plan"]["changes"] if c["action"] != "noop"}
    assert set(changes) == {
        "infra/prod/aws:eks/nodeGroup:NodeGroup::node-pools-gpu-h100",
        "infra/prod/aws:ec2/launchTemplate:LaunchTemplate::node-pools-gpu-h100",
        "infra/prod/Cost::node-pool/gpu-h100",
        "infra/prod/Cost::node-pools",
        "infra/prod/GpuBudget::fraud",
        "infra/prod/GpuBudget::recsys",
    }
    total = {tuple(d["path"]): d for d in changes["infra/prod/Cost::node-pools"]["diffs"]}
    before, after = total[("monthlyUsdAtMax",)]["before"], total[("monthlyUsdAtMax",)]["after"]
    assert round(after - before, 2) == round(55.04 * 730, 2)  # one p5.48xlarge On-Demand for a month
    template = changes["infra/prod/aws:ec2/launchTemplate:LaunchTemplate::node-pools-gpu-h100"]["desired"]["body"]
    assert template["inputs"]["networkInterfaces"][0]["interfaceType"] == "efa"
    assert template["inputs"]["metadataOptions"]["httpTokens"] == "required"


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            "        min: 2\n        max: 6",
            "        min: 7\n        max: 6",
            19,
            "nodePools.0.min: got min 7 > max 6, expected min <= max",
        ),
        (
            "[g5.xlarge]",
            "[g5.mega]",
            22,
            "nodePools.1.instanceTypes.0: got 'g5.mega', expected an instance type in the price table",
        ),
        (
            "        max: 2\n        diskGib",
            "        diskGib",
            21,
            "nodePools.1: got a GPU pool without max, expected max: N",
        ),
    ],
)
def test_a_bad_node_pool_fails_at_its_line(
    shipyard: Callable[..., Result], tmp_path: Path, old: str, new: str, line: int, message: str
) -> None:
    root = infra_repo(tmp_path)
    edit(root, "Pulumi.dev.yaml", old, new)

    with pytest.raises(SpecError) as error:
        load_stack(root, "dev")
    (found,) = error.value.diagnostics
    assert found.position is not None
    assert (found.position.file, found.position.line) == ("Pulumi.dev.yaml", line)
    result = shipyard("plan", "--target", "base:HEAD", repo=root)
    assert result.code == 1
    assert f"Pulumi.dev.yaml:{line}:" in result.err
    assert message in result.err
    assert "Traceback" not in result.err


def test_too_many_gpus_for_the_stacks_ceiling_is_refused(tmp_path: Path) -> None:
    root = infra_repo(tmp_path)
    edit(root, "Pulumi.dev.yaml", "        max: 2\n", "        max: 9\n")
    with pytest.raises(SpecError) as error:
        load_stack(root, "dev")
    (found,) = error.value.diagnostics
    assert found.message == "got GPU pools reaching 9 GPUs at max size, expected at most 8"


def test_planning_a_stack_without_the_pulumi_cli_says_so(shipyard: Callable[..., Result], tmp_path: Path) -> None:
    root = infra_repo(tmp_path)
    assert shutil.which("pulumi") is None  # this machine has no Pulumi CLI; a cloud runner does
    result = shipyard("plan", "--target", "dev", "--plane", "infra", repo=root)
    assert result.code == 1
    assert "reading stack 'dev' needs the Pulumi CLI, which is not installed here" in result.err
    assert "Traceback" not in result.err
