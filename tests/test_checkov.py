"""Checkov, an outside oracle, over what Shipyard renders and over the workflows.

Every Checkov finding is either fixed in what we render or listed, with its reason, in
``tests/checkov-skips.yaml``; a listed skip Checkov no longer reports is an error too (the list
only shrinks). Checkov skips custom resources, so each rendered InferenceService is also read
as the Pod KServe would run for its predictor (the container Shipyard renders). Where one of
our rules names a Checkov id, the rule's failing case is shown to Checkov too, and both must
report it.

Checkov runs from its own environment (``make install`` builds ``.tools/checkov`` from
``tests/tools/checkov.txt``), offline: no update check, no download of guidelines.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO_ROOT, Result, example_repo, whole_template, write

CHECKOV = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
SKIPS = REPO_ROOT / "tests" / "checkov-skips.yaml"
#: The only variables Checkov gets: where programs are, a home, and no update check.
OFFLINE = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "LOG_LEVEL": "ERROR"}


def checkov(folder: Path, framework: str) -> set[tuple[str, str]]:
    """(check id, file) of every check Checkov fails in ``folder``."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make install` (it builds Checkov's own environment)")
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **OFFLINE}
    ran = subprocess.run(
        [str(CHECKOV), "-d", str(folder), "--framework", framework, "-o", "json", "--quiet", "--skip-download"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert ran.returncode in (0, 1), ran.stderr[-3000:]  # 1: failed checks, which is what we read
    reports = json.loads(ran.stdout or "[]")
    failed = set()
    for report in reports if isinstance(reports, list) else [reports]:
        if isinstance(report, dict) and "results" in report:
            failed |= {(f["check_id"], f["file_path"].lstrip("/")) for f in report["results"]["failed_checks"]}
    return failed


def skips() -> dict[str, dict[str, str]]:
    """The documented skips, by framework: {check id: reason}."""
    listed = yaml.safe_load(SKIPS.read_text(encoding="utf-8"))
    assert all(reason.strip() for checks in listed.values() for reason in checks.values()), "a skip without a reason"
    return listed


def predictor_pod(service: dict[str, Any]) -> dict[str, Any]:
    """The Pod KServe runs for an InferenceService's predictor: the container Shipyard renders (model or custom)."""
    predictor = service["spec"]["predictor"]
    container = dict(predictor.get("model") or predictor["containers"][0])
    for kserve_only in ("modelFormat", "storageUri", "protocolVersion", "runtime"):
        container.pop(kserve_only, None)
    container["name"] = container.get("name") or "kserve-container"
    meta = service["metadata"]
    pod = {"containers": [container]}
    pod |= {k: predictor[k] for k in ("tolerations", "nodeSelector", "serviceAccountName") if k in predictor}
    # Checkov's skips travel with the object (KServe copies the InferenceService's annotations to its pods).
    skips = {k: v for k, v in meta.get("annotations", {}).items() if k.startswith("checkov.io/")}
    metadata = {"name": meta["name"], "namespace": meta["namespace"]} | ({"annotations": skips} if skips else {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod}


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_every_checkov_finding_on_what_shipyard_renders_is_fixed_or_documented(
    tmp_path: Path, shipyard: Callable[..., Result], environment: str
) -> None:
    root = example_repo(tmp_path)
    out = tmp_path / "rendered"
    assert shipyard("render", "--env", environment, "--out", str(out), repo=root).code == 0
    services = [
        d
        for f in out.rglob("*.yaml")
        for d in yaml.safe_load_all(f.read_text())
        if d and d.get("kind") == "InferenceService"
    ]
    assert services  # the fraud scorer at least
    for service in services:
        write(out, {f"pods/{service['metadata']['name']}.yaml": yaml.safe_dump(predictor_pod(service))})
    found = {check for check, _ in checkov(out, "kubernetes")}
    listed = skips()["kubernetes"]
    assert found - listed.keys() == set(), "fix these in what Shipyard renders, or list them with a reason"
    assert listed.keys() - found == set(), "Checkov no longer reports these: take them off the list"


def test_every_checkov_finding_on_the_workflows_is_fixed_or_documented() -> None:
    found = {check for check, _ in checkov(REPO_ROOT / ".github" / "workflows", "github_actions")}
    listed = skips().get("github_actions", {})
    assert found - listed.keys() == set()
    assert listed.keys() - found == set()


UNSAFE_WORKFLOW = """name: greet
on: {pull_request: {}}
permissions: write-all
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
"""


def test_checkov_reports_the_ids_our_workflow_rules_name_on_their_failing_case(tmp_path: Path) -> None:
    from shipyard.core.policies import run_policies
    from shipyard.engine.policies import repository_policies
    from shipyard.sdk.kinds import SpecSet

    write(tmp_path, {".github/workflows/greet.yml": UNSAFE_WORKFLOW})
    rules = {p.id: p for p, _ in repository_policies(REPO_ROOT)}
    cross_checked = {
        rule_id: {r.removeprefix("checkov:") for r in rule.references if r.startswith("checkov:CKV")}
        for rule_id, rule in rules.items()
        if rule.target == "repository" and any(r.startswith("checkov:CKV") for r in rule.references)
    }
    assert set(cross_checked) == {"SY-GHA-002", "SY-GHA-005"}
    ours = {d.rule for d in run_policies([rules[r] for r in cross_checked], SpecSet(), root=tmp_path)}
    theirs = {check for check, _ in checkov(tmp_path / ".github" / "workflows", "github_actions")}
    for rule_id, named in cross_checked.items():
        assert rule_id in ours
        assert named & theirs, f"{rule_id} names {sorted(named)}; Checkov reported {sorted(theirs)}"


def test_a_waiver_reaches_checkov_as_its_own_skip_annotation(tmp_path: Path, shipyard: Callable[..., Result]) -> None:
    root = whole_template(tmp_path)
    write(
        root,
        {
            "policies/waivers.yaml": "waivers:\n  - rule: SY-WRK-004\n    resource: models/fraud/InferenceService/*\n"
            "    reason: the runtime writes to /tmp\n    approver: '@sre'\n    expires: 2999-12-31\n"
        },
    )
    out = tmp_path / "rendered"
    assert shipyard("render", "--env", "dev", "--out", str(out), repo=root).code == 0
    service = yaml.safe_load((out / "fraud" / "inferenceservice-fraud-scorer.yaml").read_text())
    assert service["metadata"]["annotations"]["checkov.io/skip1"] == (
        "CKV_K8S_22=waived until 2999-12-31 by @sre: the runtime writes to /tmp"
    )
    write(out, {"pods/fraud-scorer.yaml": yaml.safe_dump(predictor_pod(service))})
    found = {check for check, _ in checkov(out, "kubernetes")}
    assert "CKV_K8S_22" not in found  # Checkov honours the waiver, in its own form
    assert "CKV_K8S_8" in found  # and still reports what no waiver covers
