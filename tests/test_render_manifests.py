"""``shipyard render``: an environment's desired Kubernetes objects as plain YAML folders with kustomizations,
the same objects a plan's desired state holds, byte for byte the same every time, checked before written."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO_ROOT, Result, commit, edit, example_repo
from shipyard.core.plan import Plan
from shipyard.planes.models import validation
from shipyard.sdk.kubernetes import is_object

Run = Callable[..., Result]
KUSTOMIZE = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
#: The planes with Kubernetes objects: enough for the tests that are not about the whole desired state.
FAST = ("--plane", "tenancy", "--plane", "models")


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return example_repo(tmp_path)


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def kustomization(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    assert {k: data[k] for k in KUSTOMIZE} == KUSTOMIZE
    assert set(data) == {*KUSTOMIZE, "resources"}
    resources: list[str] = data["resources"]
    assert resources == sorted(resources)
    return resources


def objects_in(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every rendered object by (folder, file), checking on the way that each kustomization lists exactly
    what its folder holds."""
    folders = kustomization(out / "kustomization.yaml")
    assert sorted(p.name for p in out.iterdir()) == sorted([*folders, "kustomization.yaml"])
    found = {}
    for folder in folders:
        listed = kustomization(out / folder / "kustomization.yaml")
        assert sorted(p.name for p in (out / folder).iterdir()) == sorted([*listed, "kustomization.yaml"])
        for name in listed:
            text = (out / folder / name).read_text()
            assert text.startswith("# Rendered by shipyard render --env ")
            found[folder, name] = yaml.safe_load(text)
    return found


def test_dev_renders_every_kubernetes_object_of_the_plan_one_folder_per_team(
    shipyard: Run, example: Path, tmp_path: Path
) -> None:
    out = tmp_path / "deploy" / "dev"
    result = shipyard("render", "--env", "dev", "--out", str(out), repo=example)
    assert result.code == 0, result.err
    assert "Rendered 13 Kubernetes objects for dev" in result.out
    assert "fraud/ (7), recsys/ (6)" in result.out
    assert "From git alone" in result.out
    # What no manifest carries is named, by plane.
    assert "ModelAlias" in result.out
    assert "Pipeline" in result.out

    rendered = objects_in(out)
    assert sorted({folder for folder, _ in rendered}) == ["fraud", "recsys"]
    assert sorted(name for folder, name in rendered if folder == "fraud") == [
        "inferenceservice-fraud-scorer.yaml",
        "limitrange-team-defaults.yaml",
        "namespace-fraud.yaml",
        "networkpolicy-allow-namespace-and-dns.yaml",
        "networkpolicy-default-deny.yaml",
        "resourcequota-team-quota.yaml",
        "rolebinding-team-edit.yaml",
    ]
    # A team's namespace is in its team's folder, under its own name.
    assert rendered["recsys", "namespace-recsys-ml.yaml"]["metadata"]["name"] == "recsys-ml"

    # Exactly the Kubernetes objects of the plan's desired state for dev (from git alone), body for body.
    full = shipyard("plan", "-t", "base:HEAD", "--env", "dev", "--format", "json", "--full", repo=example)  # bodies too
    plan = json.loads(full.out)
    desired = [c["desired"] for c in plan["plan"]["changes"] if c["desired"]]
    expected = {
        (r["scope"], f"{r['body']['kind']}-{r['body']['metadata']['name']}.yaml".lower()): r["body"]
        for r in desired
        if is_object(r["body"])
    }
    assert rendered == expected
    assert {r["plane"] for r in desired if is_object(r["body"])} == {"tenancy", "models"}

    # Each object passes the checks the plan makes: ObjectMeta rules, and the InferenceService CRD schema.
    for body in rendered.values():
        assert list(validation.problems(body)) == []


def test_rendering_is_deterministic_and_a_second_render_changes_nothing(
    shipyard: Run, example: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert shipyard("render", "--env", "dev", "--out", str(first), *FAST, repo=example).code == 0
    assert shipyard("render", "--env", "dev", "--out", str(second), *FAST, repo=example).code == 0
    assert files_under(first) == files_under(second)

    again = shipyard("render", "--env", "dev", "--out", str(first), *FAST, repo=example)
    assert again.code == 0
    assert "0 files written, 16 unchanged, 0 removed" in again.out
    assert files_under(first) == files_under(second)


def test_unknown_environment_is_a_user_error_and_writes_nothing(shipyard: Run, example: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = shipyard("render", "--env", "qa", "--out", str(out), repo=example)
    assert result.code == 1
    assert "unknown environment 'qa'" in result.err
    assert "environments: dev, prod, staging" in result.err
    assert "Traceback" not in result.err
    assert not out.exists()

    local = shipyard("render", "--env", "local", "--out", str(out), repo=example)
    assert local.code == 1
    assert "no Kubernetes cluster" in local.err
    assert not out.exists()


def test_a_rerender_removes_what_is_no_longer_rendered_and_keeps_files_it_did_not_write(
    shipyard: Run, example: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert shipyard("render", "--env", "dev", "--out", str(out), *FAST, repo=example).code == 0
    (out / "README.md").write_text("synced by Argo CD\n")
    (example / "platform/teams/recsys.yaml").unlink()
    commit(example, "recsys leaves")

    result = shipyard("render", "--env", "dev", "--out", str(out), *FAST, repo=example)
    assert result.code == 0, result.err
    assert "7 removed: recsys/kustomization.yaml, recsys/limitrange-team-defaults.yaml" in result.out
    assert not (out / "recsys").exists()
    assert kustomization(out / "kustomization.yaml") == ["fraud"]
    assert (out / "README.md").read_text() == "synced by Argo CD\n"


def test_a_folder_render_did_not_make_is_refused(shipyard: Run, example: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "kustomization.yaml").write_text("resources: [mine]\n")
    result = shipyard("render", "--env", "dev", "--out", str(out), *FAST, repo=example)
    assert result.code == 1
    assert "not empty and no earlier `shipyard render` made it" in result.err
    assert files_under(out) == {"kustomization.yaml": b"resources: [mine]\n"}

    inside = shipyard("render", "--env", "dev", "--out", str(example / "models" / "rendered"), *FAST, repo=example)
    assert inside.code == 1
    assert "ModelDeployment specs are read from models/*/*.yaml" in inside.err
    assert not (example / "models" / "rendered").exists()


def test_check_says_whether_the_folder_is_current(shipyard: Run, example: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = shipyard("render", "--env", "dev", "--out", str(out), "--check", *FAST, repo=example)
    assert missing.code == 1
    assert "fraud/namespace-fraud.yaml (missing)" in missing.err
    assert not out.exists()

    assert shipyard("render", "--env", "dev", "--out", str(out), *FAST, repo=example).code == 0
    assert shipyard("render", "--env", "dev", "--out", str(out), "--check", *FAST, repo=example).code == 0
    edit(example, "models/fraud/fraud-scorer.yaml", "max: 4", "max: 6")
    stale = shipyard("render", "--env", "dev", "--out", str(out), "--check", *FAST, repo=example)
    assert stale.code == 1
    assert "fraud/inferenceservice-fraud-scorer.yaml (differs)" in stale.err
    assert "maxReplicas: 4" in (out / "fraud/inferenceservice-fraud-scorer.yaml").read_text()


def test_a_failing_check_writes_nothing(shipyard: Run, example: Path, tmp_path: Path) -> None:
    for stack in ("dev", "staging", "prod"):  # the GPU pools the models plane's check knows
        shutil.copy(REPO_ROOT / f"Pulumi.{stack}.yaml", example)
    edit(example, "models/fraud/fraud-scorer.yaml", "memory: 2Gi\n", "memory: 2Gi\n    gpu: 1\n    gpuPool: gpu-h100\n")
    out = tmp_path / "out"
    result = shipyard("render", "--env", "dev", "--out", str(out), *FAST, repo=example)
    assert result.code == 1
    assert "models/fraud/fraud-scorer.yaml:" in result.err
    assert "gpuPool: got pool 'gpu-h100', expected a GPU node pool of every stack" in result.err
    assert "nothing rendered for dev" in result.err
    assert not out.exists()


def test_facts_from_a_plan_resolve_the_version_an_alias_serves(shipyard: Run, example: Path, tmp_path: Path) -> None:
    storage = "s3://shipyard-dev-mlflow/1/models/m-3/artifacts"
    version = {"metrics": {"roc_auc": 0.9, "log_loss": 0.2}, "dataChecks": ["transactions", "user-stats"]}
    version |= {"datasets": ["fraud-holdout"], "movedByShipyard": True, "storage": storage}
    facts = {"models": {"deployments": {"fraud/fraud-scorer": {"alias": 3, "newest": 3, "versions": {"3": version}}}}}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"plan": Plan("dev", (), facts).to_dict()}))
    out = tmp_path / "out"

    result = shipyard("render", "--env", "dev", "--out", str(out), "--facts-from", str(plan_file), *FAST, repo=example)
    assert result.code == 0, result.err
    assert "Over the facts the plan pinned for: models" in result.out
    served = yaml.safe_load((out / "fraud/inferenceservice-fraud-scorer.yaml").read_text())
    assert served["metadata"]["labels"]["shipyard.dev/model-version"] == "3"
    assert served["spec"]["predictor"]["model"]["storageUri"] == storage

    wrong = shipyard("render", "--env", "prod", "--out", str(out), "--facts-from", str(plan_file), repo=example)
    assert wrong.code == 1
    assert "is a plan for target 'dev', not for environment 'prod'" in wrong.err
