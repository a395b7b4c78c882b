"""The benchmarks' synthetic repositories (tests/benchmarks/synth.py): baked from the team template, valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import yaml

from benchmarks.synth import git, make_repo
from conftest import team_files
from shipyard.core import teams

SHIPYARD = str(Path(sys.executable).parent / "shipyard")


def shipyard(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run([SHIPYARD, "--repo", str(root), *args], capture_output=True, text=True, env=env)


def test_a_two_team_repository_is_baked_from_the_template_valid_and_committed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", teams=2)
    root = repo.root
    assert repo.teams == ("t0001", "t0002")
    assert repo.edited_team == "t0002"

    result = shipyard(root, "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stdout + result.stderr

    # each team's files say its own name and never the other's, nor the example team's, nor Jinja
    owners = (root / ".github/CODEOWNERS").read_text()
    records = {}
    for team, other in (repo.teams, repo.teams[::-1]):
        files = {
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and ".git" not in p.parts and team in str(p.relative_to(root))
        }
        assert files == team_files(team)
        for path in files:
            text = (root / path).read_text()
            for word in (other, "fraud", "recsys", "{{", "{%", "cookiecutter"):
                assert word not in text.lower(), (path, word)
        record = json.loads((root / f"platform/teams/{team}.answers.json").read_text())
        records[team] = record["answers"]
        assert record["template"] == {
            "path": teams.TEMPLATE,
            "commit": repo.platform,
            "tree": git(root, "rev-parse", f"{repo.platform}:{teams.TEMPLATE}").strip(),
        }
        owner = record["answers"]["owner"]
        lines = [line.split() for line in owners.splitlines() if team in line]
        assert sorted(lines) == sorted(
            [
                [f"/features/{team}/", owner],
                [f"/models/{team}/", owner],
                [f"/pipelines/{team}/", owner],
                [f"/platform/teams/{team}.answers.json", "@shipyard-dev/platform", owner],
                [f"/platform/teams/{team}.yaml", "@shipyard-dev/platform", owner],
                [f"/tests/teams/test_{team}.py", owner],
            ]
        )
    assert "fraud" not in owners
    assert "recsys" not in owners

    # the answers vary: a classifier that trains on a GPU, a regressor that does not
    first, second = records["t0001"], records["t0002"]
    assert (first["model_kind"], first["gpu_training"]) == ("tabular-classifier", "yes")
    assert (second["model_kind"], second["gpu_training"]) == ("tabular-regressor", "no")
    assert all(first[name] != second[name] for name in ("owner", "group", "domain", "cost_center"))
    for team, answers in records.items():
        pipeline = yaml.safe_load((root / f"pipelines/{team}/train/pipeline.yaml").read_text())["spec"]
        assert ("gpu" in pipeline) == (answers["gpu_training"] == "yes")
        code = (root / f"pipelines/{team}/train/pipeline.py").read_text()
        assert ("Regressor" if answers["model_kind"] == "tabular-regressor" else "Classifier") in code

    # every team is current with the template
    current = shipyard(root, "team", "upgrade", "--all", "--check")
    assert current.returncode == 0, current.stdout + current.stderr

    # c0 → c1 → c2 → c3 (HEAD): no team, the teams, one ModelDeployment field, one Team spec
    commits = git(root, "rev-list", "--reverse", "HEAD").split()
    assert commits == [repo.platform, repo.full, repo.one_field, repo.team_change]
    platform = git(root, "ls-tree", "-r", "--name-only", repo.platform).split()
    assert not [p for p in platform if p.startswith(("platform/teams/", "tests/teams/", "features/fraud"))]
    assert f"{teams.TEMPLATE}/cookiecutter.json" in platform
    changed = [git(root, "diff", "--name-only", old, new).split() for old, new in pairwise(commits)]
    edited = repo.edited_team
    assert changed[1:] == [[f"models/{edited}/{edited}-scorer.yaml"], [f"platform/teams/{edited}.yaml"]]
    quota = [git(root, "show", f"{rev}:platform/teams/{edited}.yaml") for rev in (repo.one_field, repo.team_change)]
    gpus = [yaml.safe_load(text)["spec"]["quota"]["gpu"] for text in quota]
    assert gpus[0] == int(second["gpu_quota"])
    assert gpus[1] != gpus[0]

    git(root, "checkout", "-q", repo.platform)  # the base of the full plan validates too
    result = shipyard(root, "validate")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_team_of_the_answer_cycle_can_afford_its_gpu_quota_in_every_stack() -> None:
    """A budget below a team's GPU quota at the dearest GPU pool's price is a mandatory finding (SY-GPU-007):
    the synthetic teams must plan clean at any size, so every answer set of the cycle fits."""
    import yaml

    from benchmarks.synth import REPO, answers_for
    from shipyard.planes.infra import prices

    per_gpu_hour = 0.0
    for stack in REPO.glob("Pulumi.*.yaml"):
        pools = yaml.safe_load(stack.read_text())["config"]["shipyard:platform"]["nodePools"]
        for pool in pools:
            price = prices.gpu_hour_price(pool["instanceTypes"], pool.get("capacity", "ON_DEMAND"))
            per_gpu_hour = max(per_gpu_hour, price)
    assert per_gpu_hour > 0
    for n in range(60):  # every combination of the answer cycles (profiles, budgets, domains)
        answers = answers_for(n, f"t{n:04d}")
        cost = int(answers["gpu_quota"]) * per_gpu_hour * prices.HOURS_PER_MONTH
        assert cost <= float(answers["monthly_budget_usd"]), (n, answers, cost)
