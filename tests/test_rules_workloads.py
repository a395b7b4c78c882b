"""The repository's rules on workloads, GPU capacity and tenancy (``policies/workloads.py``, ``gpu.py``,
``tenancy.py``), table-driven over the template's own desired Resources.

The template's Resources are computed once per module: the tenancy, pipelines and models planes from
git alone, and the infra plane for the prod stack (Pulumi mocks; the stack with the GPU pool that
serves production). Each rule has a passing and a failing fixture made by editing a copy of them;
the mutation test checks that every rule of these modules finds something in its failing fixture,
so a check replaced by "no findings" fails.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.engine import planner
from shipyard.engine.policies import repository_policies
from shipyard.engine.registry import Registry
from shipyard.sdk import Diagnostic
from shipyard.sdk.kinds import Spec, SpecSet
from shipyard.sdk.model import Resource
from shipyard.sdk.planes import Policy, PolicyContext

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("policies/workloads.py", "policies/gpu.py", "policies/tenancy.py")
#: Advisory because the template does not comply yet (see each rule's comment).
NOT_YET = {"SY-WRK-004"}

World = tuple[list[Resource], SpecSet]
Edit = Callable[[World], World]


@pytest.fixture(scope="module")
def rules() -> dict[str, Policy]:
    return {p.id: p for p, file in repository_policies(ROOT) if file in MODULES}


@pytest.fixture(scope="module")
def template(registry: Registry) -> World:
    validation = planner.validate(registry, ROOT)
    ctxs = planner.contexts(registry, ROOT, validation.specs, "local", None)
    resources: list[Resource] = []
    for plane in registry.planes:
        if plane.name in ("tenancy", "pipelines", "models"):
            resources += plane.desired(ctxs[plane.name])
        elif plane.name == "infra":
            resources += plane.desired(dataclasses.replace(ctxs[plane.name], environment="prod"))
    return resources, validation.specs


def findings(rule: Policy, world: World) -> list[Diagnostic]:
    resources, specs = world
    return list(rule.check(PolicyContext(specs, resources, ROOT)))


# -- editing a copy of the template ------------------------------------------------------------------------------


def edit(match: Callable[[Resource], bool], change: Callable[[dict[str, Any]], object]) -> Edit:
    """An Edit that applies ``change`` to a copy of the body of every Resource ``match`` selects."""

    def apply(world: World) -> World:
        resources, specs = world
        out = []
        hit = False
        for resource in resources:
            if match(resource):
                body = copy.deepcopy(dict(resource.body))
                change(body)
                resource = dataclasses.replace(resource, body=body)
                hit = True
            out.append(resource)
        assert hit, "the edit matched no Resource of the template"
        return out, specs

    return apply


def drop(match: Callable[[Resource], bool]) -> Edit:
    def apply(world: World) -> World:
        resources, specs = world
        kept = [r for r in resources if not match(r)]
        assert len(kept) < len(resources)
        return kept, specs

    return apply


def both(*edits: Edit) -> Edit:
    def apply(world: World) -> World:
        for one in edits:
            world = one(world)
        return world

    return apply


def same(world: World) -> World:
    return world


def kind(plane: str, kind_: str, name: str | None = None, scope: str | None = None) -> Callable[[Resource], bool]:
    return lambda r: r.plane == plane and r.kind == kind_ and name in (None, r.name) and scope in (None, r.scope)


ISVC = kind("models", "InferenceService")
PIPELINE = kind("pipelines", "Pipeline")
GPU_GROUP = kind("infra", "aws:eks/nodeGroup:NodeGroup", "node-pools-gpu-a10g")
FRAUD_NS = kind("tenancy", "Namespace", scope="fraud")


def model(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = body["spec"]["predictor"]["model"]
    return found


def security(change: Callable[[dict[str, Any]], object]) -> Edit:
    return edit(ISVC, lambda b: change(model(b)["securityContext"]))


def task(name: str, change: Callable[[dict[str, Any]], object]) -> Edit:
    return edit(PIPELINE, lambda b: change(b["tasks"][name]))


def every_task(change: Callable[[dict[str, Any]], object]) -> Edit:
    return edit(PIPELINE, lambda b: [change(t) for t in b["tasks"].values()])


def image(value: str) -> Edit:
    return edit(PIPELINE, lambda b: b["components"]["train"].update(image=value))


def unlimited_cpu(t: dict[str, Any]) -> None:
    """KFP writes a limit twice (a number, and the string as written): both gone."""
    for key in ("cpuLimit", "resourceCpuLimit"):
        t["resources"].pop(key, None)


def sized(t: dict[str, Any]) -> None:
    t.setdefault("resources", {}).update(cpuRequest=1.0, cpuLimit=2.0, memoryRequest=2e9, memoryLimit=4e9)


def gpu_served_in_prod(world: World) -> World:
    """The fraud scorer on the GPU pool: a production model served from gpu-a10g."""
    resources, specs = world

    def on_gpu(spec: Spec) -> Spec:
        if spec.kind != "ModelDeployment":
            return spec
        gpu = spec.spec.resources.model_copy(update={"gpu": 1, "gpu_pool": "gpu-a10g"})
        return dataclasses.replace(spec, spec=spec.spec.model_copy(update={"resources": gpu}))

    return resources, SpecSet(tuple(on_gpu(s) for s in specs))


def spot(body: dict[str, Any]) -> None:
    body["inputs"]["capacityType"] = "SPOT"


def quota(hard: dict[str, Any]) -> None:
    del hard["requests.nvidia.com/gpu"]


#: rule id -> (passing fixture, failing fixture), both edits of the template.
CASES: dict[str, tuple[Edit, Edit]] = {
    "SY-WRK-001": (same, security(lambda s: s.update(privileged=True))),
    "SY-WRK-002": (
        security(lambda s: s.update(privileged=False)),
        security(lambda s: s.update(allowPrivilegeEscalation=True)),
    ),
    "SY-WRK-003": (same, security(lambda s: s.pop("runAsNonRoot"))),
    "SY-WRK-004": (security(lambda s: s.update(readOnlyRootFilesystem=True)), same),
    "SY-WRK-005": (same, security(lambda s: s["capabilities"].update(drop=["NET_RAW"]))),
    "SY-WRK-006": (same, edit(ISVC, lambda b: model(b)["resources"].pop("limits"))),
    "SY-WRK-007": (every_task(sized), both(every_task(sized), task("train", unlimited_cpu))),
    "SY-WRK-008": (
        same,
        edit(ISVC, lambda b: b["spec"]["predictor"].update(tolerations=[{"key": "nvidia.com/gpu"}])),
    ),
    "SY-WRK-009": (same, task("train", lambda t: t.pop("tolerations"))),
    "SY-WRK-010": (
        image("ghcr.io/shipyard-dev/runtime@sha256:" + "0" * 64),
        image("ghcr.io/shipyard-dev/runtime:latest"),
    ),
    "SY-WRK-011": (same, image("docker.io/library/python:3.11")),
    "SY-WRK-012": (same, edit(ISVC, lambda b: model(b).pop("readinessProbe"))),
    "SY-GPU-001": (same, edit(GPU_GROUP, lambda b: b["inputs"].pop("taints"))),
    "SY-GPU-002": (same, edit(GPU_GROUP, lambda b: b["inputs"]["labels"].pop("shipyard.dev/pool"))),
    "SY-GPU-003": (same, edit(GPU_GROUP, lambda b: b["inputs"]["scalingConfig"].pop("maxSize"))),
    "SY-GPU-004": (same, edit(GPU_GROUP, lambda b: b["inputs"].update(amiType="AL2023_x86_64_STANDARD"))),
    "SY-GPU-005": (same, edit(kind("infra", "Cost", "node-pools"), lambda b: b.update(gpuCeiling=4))),
    "SY-GPU-006": (
        both(gpu_served_in_prod, edit(kind("infra", "aws:eks/nodeGroup:NodeGroup", "node-pools-system"), spot)),
        both(gpu_served_in_prod, edit(GPU_GROUP, spot)),
    ),
    "SY-GPU-007": (same, edit(kind("infra", "GpuBudget", "fraud"), lambda b: b.update(budgetUsd=100.0))),
    "SY-TEN-004": (same, edit(kind("tenancy", "ResourceQuota", scope="fraud"), lambda b: quota(b["spec"]["hard"]))),
    "SY-TEN-005": (same, drop(kind("tenancy", "LimitRange", scope="fraud"))),
    "SY-TEN-006": (
        same,
        edit(kind("tenancy", "NetworkPolicy", "default-deny", "fraud"), lambda b: b["spec"].update(ingress=[{}])),
    ),
    "SY-TEN-007": (
        same,
        edit(FRAUD_NS, lambda b: b["metadata"]["labels"].update({"pod-security.kubernetes.io/enforce": "baseline"})),
    ),
    "SY-TEN-008": (
        same,
        edit(kind("tenancy", "RoleBinding", scope="fraud"), lambda b: b["roleRef"].update(name="cluster-admin")),
    ),
}


def test_every_rule_has_cases(rules: dict[str, Policy]) -> None:
    assert set(rules) == set(CASES)
    assert len(rules) >= 14


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_passing_fixture(rule_id: str, rules: dict[str, Policy], template: World) -> None:
    passing, _ = CASES[rule_id]
    assert findings(rules[rule_id], passing(template)) == []


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_failing_fixture(rule_id: str, rules: dict[str, Policy], template: World) -> None:
    """The mutation test: each rule finds something in its failing fixture, naming what it is about."""
    _, failing = CASES[rule_id]
    found = findings(rules[rule_id], failing(template))
    assert len(found) >= 1
    for finding in found:
        assert finding.subject, finding
        assert "got " in finding.message, finding


def test_template_passes_every_mandatory_rule(rules: dict[str, Policy], template: World) -> None:
    failing = {rule_id: findings(rule, template) for rule_id, rule in rules.items()}
    broken = {rule_id: found for rule_id, found in failing.items() if found and rules[rule_id].mandatory}
    assert broken == {}
    # The advisory rules the template does not meet yet; one that starts passing can become mandatory.
    assert {rule_id for rule_id, found in failing.items() if found} == NOT_YET
    assert all(not rules[rule_id].mandatory for rule_id in NOT_YET)


def test_every_rule_names_upstream_or_a_hint(rules: dict[str, Policy]) -> None:
    for rule in rules.values():
        assert rule.hint, rule.id
        assert rule.needs_resources, rule.id


def test_findings_point_at_the_spec(rules: dict[str, Policy], template: World) -> None:
    """A finding on a rendered object is at the spec field it came from, about the Resource."""
    on_model = findings(rules["SY-WRK-006"], CASES["SY-WRK-006"][1](template))
    assert [d.subject for d in on_model] == ["models/fraud/InferenceService/fraud-scorer"]
    assert on_model[0].position is not None
    assert on_model[0].position.file == "models/fraud/fraud-scorer.yaml"
    assert on_model[0].key_path == "spec.resources"

    on_task = findings(rules["SY-WRK-009"], CASES["SY-WRK-009"][1](template))
    assert on_task[0].position is not None
    assert (on_task[0].position.file, on_task[0].key_path) == ("pipelines/fraud/train/pipeline.yaml", "spec.gpu")

    on_team = findings(rules["SY-TEN-004"], CASES["SY-TEN-004"][1](template))
    assert on_team[0].position is not None
    assert (on_team[0].position.file, on_team[0].key_path) == ("platform/teams/fraud.yaml", "spec.quota")

    on_budget = findings(rules["SY-GPU-007"], CASES["SY-GPU-007"][1](template))
    assert on_budget[0].key_path == "spec.budget.monthlyUsd"
    assert on_budget[0].subject == "infra/prod/GpuBudget/fraud"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("ghcr.io/shipyard-dev/runtime:0.1.0", []),
        ("ghcr.io/shipyard-dev/runtime", ["SY-WRK-010"]),
        ("ghcr.io/shipyard-dev/runtime:latest", ["SY-WRK-010"]),
        ("localhost:5000/runtime", ["SY-WRK-010", "SY-WRK-011"]),
        ("ghcr.io/shipyard-dev.evil/runtime:1", ["SY-WRK-011"]),
    ],
)
def test_image_references(reference: str, expected: list[str], rules: dict[str, Policy], template: World) -> None:
    world = image(reference)(template)
    found = sorted(rid for rid in ("SY-WRK-010", "SY-WRK-011") if findings(rules[rid], world))
    assert found == expected


def test_spot_is_fine_for_pools_prod_does_not_serve_from(rules: dict[str, Policy], template: World) -> None:
    # Training on spot GPUs: the scorer runs on CPU, so the spot GPU pool serves no production model.
    assert findings(rules["SY-GPU-006"], edit(GPU_GROUP, spot)(template)) == []


def custom(reference: str) -> Edit:
    """The fraud scorer as a custom runtime: one container with ``reference`` as its image."""

    def change(body: dict[str, Any]) -> None:
        predictor = body["spec"]["predictor"]
        container = predictor.pop("model")
        predictor["containers"] = [{"name": "kserve-container", "image": reference} | container]

    return edit(ISVC, change)


def test_custom_runtime_images(rules: dict[str, Policy], template: World) -> None:
    """Custom containers are checked like the model server, and their images too (built-in runtimes' are not)."""
    good = custom("ghcr.io/shipyard-dev/scorer:1.4.2")(template)
    assert all(findings(rule, good) == [] for rule_id, rule in rules.items() if rule_id not in NOT_YET)

    bad = custom("docker.io/someone/scorer:latest")(template)
    for rule_id in ("SY-WRK-010", "SY-WRK-011"):
        found = findings(rules[rule_id], bad)
        assert [d.key_path for d in found] == ["spec.image"], rule_id
    unsized = edit(ISVC, lambda b: b["spec"]["predictor"]["containers"][0].pop("resources"))(good)
    assert [d.key_path for d in findings(rules["SY-WRK-006"], unsized)] == ["spec.resources"]


# -- the outside oracle: Checkov reports what a rule names, on the rule's failing fixture ----------------------------


def _checkov_ids(rule: Policy) -> set[str]:
    return {r.removeprefix("checkov:") for r in rule.references if r.startswith("checkov:CKV_K8S_")}


#: The rules over model servers that name a Checkov Kubernetes check (pipeline tasks are no Pod we render).
CROSS_CHECKED = sorted(
    p.id
    for p, file in repository_policies(ROOT)
    if file in MODULES and _checkov_ids(p) and p.target == "resource:models/InferenceService"
)


@pytest.mark.parametrize("rule_id", CROSS_CHECKED)
def test_checkov_reports_what_the_rule_names_on_its_failing_fixture(
    rule_id: str, rules: dict[str, Policy], template: World, tmp_path: Path
) -> None:
    from test_checkov import checkov, predictor_pod

    def pod_findings(world: World, folder: Path) -> set[str]:
        [service] = [r for r in world[0] if ISVC(r)]
        folder.mkdir()
        (folder / "pod.yaml").write_text(yaml.safe_dump(predictor_pod(dict(service.body))))
        return {check for check, _ in checkov(folder, "kubernetes")}

    passing, failing = CASES[rule_id]
    broken = failing(template)
    assert findings(rules[rule_id], broken)  # ours
    named = _checkov_ids(rules[rule_id])
    added = pod_findings(broken, tmp_path / "failing") - pod_findings(passing(template), tmp_path / "passing")
    assert named & added, f"Checkov reported {sorted(added)} on the failing fixture; {rule_id} names {sorted(named)}"
