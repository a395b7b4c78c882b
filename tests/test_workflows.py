"""GitHub workflows: actions pinned to commits, least privilege, and zizmor's audit clean."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def uses(workflow: Path) -> list[str]:
    data = yaml.safe_load(workflow.read_text())
    return [step["uses"] for job in data["jobs"].values() for step in job.get("steps", []) if "uses" in step]


def test_there_is_a_ci_workflow_running_the_readme_test_command() -> None:
    ci = REPO_ROOT / ".github" / "workflows" / "ci.yml"
    assert ci in WORKFLOWS
    assert "make test" in ci.read_text()


def test_every_action_is_pinned_to_a_full_commit_sha() -> None:
    loose = [(w.name, u) for w in WORKFLOWS for u in uses(w) if not PINNED.match(u)]
    assert loose == []


def test_every_workflow_declares_least_privilege_permissions() -> None:
    for workflow in WORKFLOWS:
        data = yaml.safe_load(workflow.read_text())
        assert data.get("permissions") == {"contents": "read"}, workflow.name


def test_zizmor_finds_nothing() -> None:
    zizmor = Path(sys.executable).parent / "zizmor"
    done = subprocess.run(
        [str(zizmor), "--offline", "--no-progress", *map(str, WORKFLOWS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
