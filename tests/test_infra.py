"""The infra plane: every stack's Pulumi program under mocks (what matters asserted, the graph against a golden
file), bad stack config at its line, a PR's plan with the cost delta, a deployed stack planned from a preview's
steps, and a clear refusal without the Pulumi CLI."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import EngineEvent

from conftest import REPO_ROOT, Result, commit, edit, example_repo
from shipyard.engine import planner
from shipyard.engine.apply import apply
from shipyard.engine.registry import Registry
from shipyard.engine.targets import parse_target
from shipyard.planes.infra import evaluate_stacks, preview
from shipyard.planes.infra.stack import load_stack, stacks
from shipyard.sdk import Action, SpecError, StalePlanError, TargetUnavailable
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
    assert sorted(b["bucketPrefix"].split("-")[-2] for b in buckets) == [
        "datasets",
        "feast",
        "mlflow",
        "models",
        "state",
    ]
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
    assert [v["versioningConfiguration"]["status"] for v in versioning] == ["Enabled"] * 5
    for found in of_type(graph, "aws:s3/bucketPolicy:BucketPolicy"):
        (statement,) = policy_of(found)["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert (
        len(encryption)
        == len(versioning)
        == len(of_type(graph, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"))
        == 5
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
def test_roles_trust_only_their_service_account_or_this_repositorys_ci(graphs: dict[str, Graph], stack: str) -> None:
    trusts = [policy_of(r, "assumeRolePolicy")["Statement"][0] for r in of_type(graphs[stack], "aws:iam/role:Role")]
    web = [t for t in trusts if t["Action"] == "sts:AssumeRoleWithWebIdentity"]
    assert len(web) >= 8  # MLflow, KFP, KServe, Feast, EBS CSI, each team, CI deploy and read
    for trust in web:
        pinned = trust["Condition"]["StringEquals"]
        assert any(k.endswith(":aud") for k in pinned)
        assert any(k.endswith(":sub") for k in pinned)
        sub = next(v for k, v in pinned.items() if k.endswith(":sub"))
        ci = {
            "repo:shipyard-dev/shipyard:environment:" + stack,  # the deploy role: the stack's GitHub Environment
            "repo:shipyard-dev/shipyard:pull_request",  # the read role
            "repo:shipyard-dev/shipyard:ref:refs/heads/main",
        }
        assert (isinstance(sub, str) and sub.startswith("system:serviceaccount:")) or set(
            sub if isinstance(sub, list) else [sub]
        ) <= ci
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


@pytest.mark.parametrize("stack", STACKS)
def test_each_stacks_resource_graph_matches_its_golden_file(graphs: dict[str, Graph], stack: str) -> None:
    """Names, parents and dependencies: a refactor that moves or renames a resource shows up here."""
    lines = []
    for resource in graphs[stack]:
        parent = resource["parent"].rpartition("::")[2]
        depends = sorted(d.rpartition("::")[2] for d in resource["dependencies"])
        lines.append(f"{resource['type']}::{resource['name']}  parent={parent}  deps={','.join(depends)}")
    golden(f"infra-{stack}-graph.txt", "\n".join(sorted(lines)) + "\n")  # registration order is async


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
        "infra/prod/aws:eks/nodeGroup:NodeGroup/node-pools-gpu-h100",
        "infra/prod/aws:ec2/launchTemplate:LaunchTemplate/node-pools-gpu-h100",
        "infra/prod/Cost/node-pool/gpu-h100",
        "infra/prod/Cost/node-pools",
        "infra/prod/GpuBudget/fraud",
        "infra/prod/GpuBudget/recsys",
    }
    total = {tuple(d["path"]): d for d in changes["infra/prod/Cost/node-pools"]["diffs"]}
    before, after = total[("monthlyCostUsd",)]["before"], total[("monthlyCostUsd",)]["after"]
    assert round(after - before, 2) == round(55.04 * 730, 2)  # one p5.48xlarge On-Demand for a month
    template = changes["infra/prod/aws:ec2/launchTemplate:LaunchTemplate/node-pools-gpu-h100"]["desired"]["body"]
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
    with pytest.raises(TargetUnavailable, match="applying stack 'dev' needs the Pulumi CLI"):
        preview.up(root, "dev", {"resourcePlans": {}})


def step(op: str, item: dict[str, Any], old: dict[str, Any] | None, new: dict[str, Any] | None) -> EngineEvent:
    """A step event as the engine writes it to its event log (``pulumi preview --json --event-log``)."""

    def state(inputs: dict[str, Any]) -> dict[str, Any]:
        fields = {"type": item["type"], "urn": item["urn"], "custom": True, "parent": item.get("parent", "")}
        return fields | {"inputs": inputs, "outputs": {}}

    metadata: dict[str, Any] = {"op": op, "urn": item["urn"], "type": item["type"], "provider": ""}
    if old is not None:
        metadata["old"] = state(old)
    if new is not None:
        metadata["new"] = state(new)
    return EngineEvent.from_json({"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": metadata}})


def named(type_token: str, name: str) -> dict[str, Any]:
    return {"urn": f"urn:pulumi:dev::shipyard::{type_token}::{name}", "type": type_token}


def test_a_preview_keeps_each_resource_as_deployed_and_as_the_update_leaves_it() -> None:
    bucket, group = named("aws:s3/bucketV2:BucketV2", "datasets"), named("aws:eks/nodeGroup:NodeGroup", "gpu")
    role, logs = named("aws:iam/role:Role", "feast"), named("aws:cloudwatch/logGroup:LogGroup", "old-logs")
    template = named("aws:ec2/launchTemplate:LaunchTemplate", "gpu-template")
    vanished = named("aws:sqs/queue:Queue", "deleted-by-hand")
    events = [
        step("same", named("pulumi:pulumi:Stack", "shipyard-dev"), {}, {}),
        step("create", named("pulumi:providers:aws", "default_7_51_0"), None, {"region": "us-east-1"}),
        step("read", named("aws:ec2/vpc:Vpc", "looked-up"), None, {"id": "vpc-1"}),
        step("refresh", vanished, {"name": "jobs"}, None),  # gone from the cloud: the update creates it again
        step("create", vanished, None, {"name": "jobs"}),
        step("same", bucket, {"versioning": "Enabled"}, {"versioning": "Enabled"}),
        step("update", group, {"scalingConfig": {"maxSize": 1}}, {"scalingConfig": {"maxSize": 2}}),
        step("create", role, None, {"name": "feast", "tags": [{"arn": preview.UNKNOWN}]}),
        step("delete", logs, {"retentionInDays": 30}, None),
        step("create-replacement", template, {"imageId": "ami-1"}, {"imageId": "ami-2"}),
        step("replace", template, {"imageId": "ami-1"}, {"imageId": "ami-2"}),
        step("delete-replaced", template, {"imageId": "ami-1"}, {"imageId": "ami-2"}),
    ]

    found = preview.steps(events)

    assert {item["urn"].rpartition("::")[2]: item["inputs"] for item in found.proposed} == {
        "deleted-by-hand": {"name": "jobs"},
        "datasets": {"versioning": "Enabled"},
        "gpu": {"scalingConfig": {"maxSize": 2}},
        "feast": {"name": "feast", "tags": [{"arn": "(known after apply)"}]},
        "gpu-template": {"imageId": "ami-2"},
    }
    assert {item["urn"].rpartition("::")[2]: item["inputs"] for item in found.deployed} == {
        "datasets": {"versioning": "Enabled"},
        "gpu": {"scalingConfig": {"maxSize": 1}},
        "old-logs": {"retentionInDays": 30},
        "gpu-template": {"imageId": "ami-1"},
    }


def test_a_deployed_stack_is_planned_from_the_engines_preview(
    graphs: dict[str, Graph], registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plane's wiring with the preview's events in place of the CLI: the deployed dev stack is the mocks' graph
    with a smaller GPU pool, a bucket the repo no longer has, and no Feast role yet."""
    program = graphs["dev"]
    gpu_group = next(r for r in program if r["name"] == "node-pools-gpu-a10g" and r["type"].endswith("NodeGroup"))
    feast_role = next(r for r in program if r["name"] == "iam-feast" and r["type"] == "aws:iam/role:Role")
    smaller = copy.deepcopy(gpu_group["inputs"])
    smaller["scalingConfig"]["maxSize"] = 1
    events = [step("same", r, r["inputs"], r["inputs"]) for r in program if r not in (gpu_group, feast_role)]
    events += [
        step("update", gpu_group, smaller, gpu_group["inputs"]),
        step("create", feast_role, None, feast_role["inputs"] | {"assumeRolePolicy": preview.UNKNOWN}),
        step("delete", named("aws:s3/bucketV2:BucketV2", "scratch"), {"bucket": "scratch"}, None),
    ]
    asked = []
    monkeypatch.setattr(preview, "run", lambda root, stack: asked.append(stack) or preview.steps(events))

    result = planner.plan(registry.only(["infra"]), REPO_ROOT, parse_target("dev"))

    assert asked == ["dev"]  # one preview for both sides; no mocks, no cost lines
    assert result.plan.facts["infra"]["stack"] == "dev"  # the preview is the plane's pinned fact, in the plan
    deployed = {item["urn"] for item in result.plan.facts["infra"]["deployed"]}
    scratch = named("aws:s3/bucketV2:BucketV2", "scratch")["urn"]
    assert (scratch in deployed, feast_role["urn"] in deployed) == (True, False)
    changes = {c.key.removeprefix("infra/dev/"): c for c in result.plan.changes if c.action != Action.NOOP}
    group_key = f"aws:eks/nodeGroup:NodeGroup/{gpu_group['name']}"
    role_key = f"aws:iam/role:Role/{feast_role['name']}"
    assert {key: c.action for key, c in changes.items()} == {
        "StackUpdate/dev": Action.UPDATE,  # the one change an apply executes: `pulumi up --plan`
        group_key: Action.UPDATE,
        role_key: Action.CREATE,
        "aws:s3/bucketV2:BucketV2/scratch": Action.DELETE,
    }
    update = changes["StackUpdate/dev"].desired
    assert update is not None
    assert update.body["resources"] == sorted(f"infra/dev/{key}" for key in changes if key != "StackUpdate/dev")
    (diff,) = changes[group_key].diffs
    assert (diff.dotted, diff.before, diff.after) == ("inputs.scalingConfig.maxSize", 1, 2)
    created = changes[role_key].desired
    assert created is not None
    assert created.body["inputs"]["assumeRolePolicy"] == "(known after apply)"
    assert sum(1 for c in result.plan.changes if c.action == Action.NOOP) == len(program) - 2


def _deployed_dev(graphs: dict[str, Graph]) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The dev stack as deployed with a smaller GPU pool: its resources, the GPU group, the smaller inputs."""
    program = graphs["dev"]
    group = next(r for r in program if r["name"] == "node-pools-gpu-a10g" and r["type"].endswith("NodeGroup"))
    smaller = copy.deepcopy(group["inputs"])
    smaller["scalingConfig"]["maxSize"] = 1
    return program, group, smaller


@pytest.fixture
def stack_dev(graphs: dict[str, Graph], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The dev stack behind the preview adapter: `run` reads ``world["events"]``, `up` records its update plan
    and, as Pulumi would, leaves the stack as the plan said."""
    program, group, smaller = _deployed_dev(graphs)
    settled = [step("same", r, r["inputs"], r["inputs"]) for r in program]
    world: dict[str, Any] = {
        "events": [e for e, r in zip(settled, program, strict=True) if r is not group]
        + [step("update", group, smaller, group["inputs"])],
        "saved": {"resourcePlans": {group["urn"]: {"steps": ["update"]}}},  # the shape `--save-plan` writes
        "ran": [],
    }

    def run(root: Path, stack: str) -> preview.Preview:
        return replace(preview.steps(world["events"]), update_plan=world["saved"])

    def up(root: Path, stack: str, update_plan: dict[str, Any]) -> None:
        world["ran"].append((stack, update_plan))
        world["events"] = settled

    monkeypatch.setattr(preview, "run", run)
    monkeypatch.setattr(preview, "up", up)
    world["group"] = group
    return world


def test_applying_a_deployed_stack_runs_exactly_the_reviewed_update_plan(
    stack_dev: dict[str, Any], registry: Registry, cloud_state: str
) -> None:
    infra, dev = registry.only(["infra"]), parse_target("dev")
    reviewed = planner.plan(infra, REPO_ROOT, dev).plan
    assert reviewed.facts["infra"]["updatePlan"] == stack_dev["saved"]  # in the reviewed plan and its hash

    report = apply(infra, REPO_ROOT, dev, reviewed=reviewed)

    assert stack_dev["ran"] == [("dev", stack_dev["saved"])]  # one `pulumi up --plan`, with the reviewed plan
    group_key = f"infra/dev/{stack_dev['group']['type']}/{stack_dev['group']['name']}"
    assert report.applied == ["infra/dev/StackUpdate/dev", group_key]
    assert not planner.plan(infra, REPO_ROOT, dev).plan.has_changes  # verified: the stack is as planned


def test_a_stack_that_moved_since_review_is_refused_before_pulumi_runs(
    stack_dev: dict[str, Any], registry: Registry, graphs: dict[str, Graph], cloud_state: str
) -> None:
    """`pulumi up --plan` alone would apply over this drift; Shipyard's observed fingerprint refuses it."""
    infra, dev = registry.only(["infra"]), parse_target("dev")
    reviewed = planner.plan(infra, REPO_ROOT, dev).plan
    bucket = next(r for r in graphs["dev"] if r["type"] == "aws:s3/bucket:Bucket")
    by_hand = bucket["inputs"] | {"forceDestroy": True}  # changed in the console; the repo still says False
    stack_dev["events"] = [
        step("update", bucket, by_hand, bucket["inputs"]) if e.resource_pre_event.metadata.urn == bucket["urn"] else e
        for e in stack_dev["events"]
    ]
    with pytest.raises(StalePlanError, match=r"what it observed moved since \(infra\)"):
        apply(infra, REPO_ROOT, dev, reviewed=reviewed)
    assert stack_dev["ran"] == []


def _named(graph: Graph, type_token: str, name: str) -> dict[str, Any]:
    [found] = [r["inputs"] for r in graph if r["type"] == type_token and r["name"] == name]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_the_runtime_image_repository_is_immutable_scanned_kms_encrypted_and_pruned(
    graphs: dict[str, Graph], stack: str
) -> None:
    [repository] = of_type(graphs[stack], "aws:ecr/repository:Repository")
    assert repository["name"] == f"shipyard-{stack}-runtime"  # platform/runtime/images.yaml names it
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    [encryption] = repository["encryptionConfigurations"]
    assert encryption["encryptionType"] == "KMS"
    assert encryption["kmsKey"]  # the stack's key
    [lifecycle] = of_type(graphs[stack], "aws:ecr/lifecyclePolicy:LifecyclePolicy")
    [rule] = policy_of(lifecycle)["rules"]
    assert rule["selection"]["countType"] == "imageCountMoreThan"
    assert rule["action"] == {"type": "expire"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_deploy_role_pushes_only_to_the_runtime_repository_and_the_read_role_only_reads(
    graphs: dict[str, Graph], stack: str
) -> None:
    push = policy_of(_named(graphs[stack], "aws:iam/rolePolicy:RolePolicy", "iam-ci-deploy-runtime-image"))
    by_resource = {s["Resource"]: s["Action"] for s in push["Statement"]}
    assert by_resource.pop("*") == "ecr:GetAuthorizationToken"  # account-wide by AWS's design
    [(repository, actions)] = by_resource.items()
    assert repository.startswith("arn:") or repository  # the repository's ARN (a mock's value here)
    assert "ecr:PutImage" in actions
    assert not any(a.startswith(("ecr:Delete", "ecr:Set", "ecr:Create")) for a in actions)
    attached = _named(graphs[stack], "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "iam-ci-read")
    assert attached["policyArn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"
    state = policy_of(_named(graphs[stack], "aws:iam/rolePolicy:RolePolicy", "iam-ci-read-state"))
    actions = {
        a for st in state["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    }
    assert actions == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "kms:Decrypt"}
    [decrypt] = [st for st in state["Statement"] if st["Action"] == "kms:Decrypt"]
    assert "kms:EncryptionContext:aws:s3:arn" in decrypt["Condition"]["StringEquals"]
