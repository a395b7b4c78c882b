"""The scale benchmark's synthetic repositories (tests/benchmarks/synth.py): valid, renamed, committed."""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

from benchmarks.synth import TEMPLATE_TEAM, git, make_repo

SHIPYARD = str(Path(sys.executable).parent / "shipyard")


def validate(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run([SHIPYARD, "--repo", str(root), "validate"], capture_output=True, text=True, env=env)


def test_a_two_team_repository_is_valid_renamed_and_committed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", teams=2)
    root, copy = repo.root, repo.teams[1]
    assert repo.teams == (TEMPLATE_TEAM, "t0001")

    result = validate(root)
    assert result.returncode == 0, result.stdout + result.stderr

    # every file of the copy, its CODEOWNERS lines included, says its own name and never the template's
    files = [p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts and copy in str(p.relative_to(root))]
    assert {str(p.relative_to(root)) for p in files} >= {
        f"platform/teams/{copy}.yaml",
        f"features/{copy}/features.py",
        f"pipelines/{copy}/train/pipeline.yaml",
        f"models/{copy}/{copy}-scorer.yaml",
    }
    for path in files:
        assert TEMPLATE_TEAM not in path.read_text().lower(), path
    owners = [line for line in (root / ".github/CODEOWNERS").read_text().splitlines() if copy in line]
    assert len(owners) == 4
    assert not any(TEMPLATE_TEAM in line for line in owners)

    # c0 → c1 → c2 → c3 (HEAD): no team, the teams, one ModelDeployment field, one Team spec
    commits = git(root, "rev-list", "--reverse", "HEAD").split()
    assert commits == [repo.platform, repo.full, repo.one_field, repo.team_change]
    assert "platform/teams/" not in git(root, "ls-tree", "-r", "--name-only", repo.platform)
    changed = [git(root, "diff", "--name-only", old, new).split() for old, new in pairwise(commits)]
    assert changed[1:] == [[f"models/{copy}/{copy}-scorer.yaml"], [f"platform/teams/{copy}.yaml"]]

    git(root, "checkout", "-q", repo.platform)  # the base of the full plan validates too
    result = validate(root)
    assert result.returncode == 0, result.stdout + result.stderr
