"""The team template (platform/templates/team/), `shipyard new-team` and `shipyard team upgrade`.

In the style of cookiecutter-data-science's and mlops-stacks' template tests: bake over a matrix
of answers into a throwaway copy of the repository, check the exact file set, that nothing of
Jinja is left, that the baked repository validates and plans, and that the team's own tests
pass; refuse bad answers without writing anything; upgrade a team that edited its files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, commit, edit, git, team_files, whole_template
from shipyard.core import teams

COOKIECUTTER = str(Path(sys.executable).parent / "cookiecutter")


def team_repo(where: Path) -> Path:
    """The whole template with the team template, committed: what a platform team clones."""
    root = whole_template(where)
    shutil.copytree(REPO_ROOT / teams.TEMPLATE, root / teams.TEMPLATE)
    commit(root, "the platform")
    return root


def status(root: Path) -> str:
    return git(root, "status", "--porcelain", "--untracked-files=all")


def added(root: Path) -> set[str]:
    listed = git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
    return {line[3:] for line in listed if line.startswith("??")}


def own_tests(root: Path, team: str) -> subprocess.CompletedProcess[str]:
    test = root / "tests" / "teams" / f"test_{teams.identifier(team)}.py"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-s", str(test)]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600, check=False)


def test_new_team_validates_plans_additions_in_every_plane_and_passes_its_own_tests(tmp_path: Path, shipyard) -> None:
    root = team_repo(tmp_path)
    made = shipyard("new-team", "risk", "--owner", "@acme/risk", "--gpu-quota", "4", "--no-input", repo=root)
    assert made.code == 0, made.err
    assert "Team risk added" in made.out
    assert added(root) == team_files("risk")
    owners = (root / ".github/CODEOWNERS").read_text()
    assert "/features/risk/" in owners
    assert "/platform/teams/risk.yaml" in owners
    record = json.loads((root / "platform/teams/risk.answers.json").read_text())
    assert record["template"]["commit"] == git(root, "rev-parse", "HEAD").strip()
    assert record["answers"]["owner"] == "@acme/risk"

    checked = shipyard("validate", repo=root)
    assert checked.code == 0, checked.out + checked.err

    planned = shipyard("plan", "--target", "base:HEAD", "--format", "json", repo=root)
    assert planned.code == 0, planned.err
    changes = json.loads(planned.out)["plan"]["changes"]
    assert {c["action"] for c in changes} == {"create"}
    resources = [c["desired"] for c in changes]
    assert {r["scope"] for r in resources} == {"risk", "dev", "staging", "prod"}
    created = {(r["plane"], r["kind"]) for r in resources}
    for expected in [
        ("tenancy", "Namespace"),
        ("tenancy", "ResourceQuota"),
        ("infra", "aws:iam/role:Role"),
        ("infra", "GpuBudget"),
        ("features", "FeatureService"),
        ("pipelines", "Pipeline"),
        ("models", "InferenceService"),
    ]:
        assert expected in created, (expected, sorted(created))
    # one IAM role per stack
    roles = [r["scope"] for r in resources if r["kind"] == "aws:iam/role:Role"]
    assert sorted(roles) == ["dev", "prod", "staging"]

    tests = own_tests(root, "risk")
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout


MATRIX = [
    {"team": "credit-risk", "kind": "tabular-regressor", "gpu": False, "quota": "0"},
    {"team": "ads", "kind": "tabular-classifier", "gpu": False, "quota": "2"},
    {"team": "churn", "kind": "tabular-regressor", "gpu": True, "quota": "8"},
]


@pytest.mark.parametrize("case", MATRIX, ids=[c["team"] for c in MATRIX])
def test_the_template_bakes_over_a_matrix_of_answers(tmp_path: Path, shipyard, case: dict) -> None:
    root = team_repo(tmp_path)
    team = case["team"]
    gpu = "--gpu-training" if case["gpu"] else "--no-gpu-training"
    flags = ["--kind", case["kind"], "--gpu-quota", case["quota"], gpu]
    made = shipyard("new-team", team, *flags, "--no-input", repo=root)
    assert made.code == 0, made.err
    assert added(root) == team_files(team)
    for path in team_files(team):
        text = (root / path).read_text()
        leftovers = [mark for mark in ("{{", "{%", "cookiecutter") if mark in text]
        assert not leftovers, (path, leftovers)
    ident = teams.identifier(team)
    pipeline = yaml.safe_load((root / f"pipelines/{team}/train/pipeline.yaml").read_text())["spec"]
    assert ("gpu" in pipeline) == case["gpu"]
    code = (root / f"pipelines/{team}/train/pipeline.py").read_text()
    assert f"def {ident}_train(" in code
    deployment = yaml.safe_load((root / f"models/{team}/{team}-scorer.yaml").read_text())["spec"]
    metrics = " ".join(deployment["gates"]["metrics"])
    if case["kind"] == "tabular-regressor":
        assert "Regressor" in code
        assert "r2 >=" in metrics
        assert f"{ident}_score" in code
    else:
        assert "Classifier" in code
        assert "roc_auc >=" in metrics
        assert f"is_{ident}" in code
    assert deployment["smoke"]["featureService"] == f"{ident}_scorer"
    checked = shipyard("validate", repo=root)
    assert checked.code == 0, checked.out + checked.err


def test_a_regressor_team_trains_and_passes_its_gates(tmp_path: Path, shipyard) -> None:
    root = team_repo(tmp_path)
    flags = ["--kind", "tabular-regressor", "--no-gpu-training", "--no-input"]
    made = shipyard("new-team", "credit-risk", *flags, repo=root)
    assert made.code == 0, made.err
    tests = own_tests(root, "credit-risk")
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert '"r2"' in tests.stdout  # the metrics are reported


REFUSED = [
    (["Risk"], "answer 'team': got 'Risk'", "DNS-1123"),
    (["risk-"], "answer 'team': got 'risk-'", "DNS-1123"),
    (["risk_team"], "answer 'team': got 'risk_team'", "DNS-1123"),
    (["kube-system"], "answer 'team': got 'kube-system'", "not reserved"),
    (["platform"], "answer 'team': got 'platform'", "not reserved"),
    (["default"], "answer 'team': got 'default'", "not reserved"),
    (["a" * 23], f"answer 'team': got '{'a' * 23}'", "at most 22 characters"),
    (["fraud"], "answer 'team': got 'fraud'", "platform/teams/fraud.yaml exists"),
    (["recsys-ml"], "answer 'team': got 'recsys-ml'", "team recsys has namespace 'recsys-ml'"),
    (["risk", "--owner", "acme"], "answer 'owner': got 'acme'", "a GitHub handle"),
    (["risk", "--owner", "ana@example.com"], "answer 'owner': got 'ana@example.com'", "a GitHub handle"),
    (["risk", "--gpu-quota", "9"], "answer 'gpu_quota': got '9'", "at most 8 (gpuCeiling of stack dev"),
    (["risk", "--gpu-quota", "two"], "answer 'gpu_quota': got 'two'", "a whole number of GPUs"),
    (["risk", "--gpu-quota", "0"], "answer 'gpu_quota': got '0'", "at least 1 (GPU training needs one)"),
    (["risk", "--budget", "-5"], "answer 'monthly_budget_usd': got '-5'", "a number of US dollars >= 0"),
    (["risk", "--cost-center", "CC 1"], "answer 'cost_center': got 'CC 1'", "a cost-center code"),
    (["risk", "--group", "a b"], "answer 'group': got 'a b'", "an identity-provider group"),
]


@pytest.mark.parametrize(("args", "given", "allowed"), REFUSED, ids=[" ".join(r[0])[:30] for r in REFUSED])
def test_a_refused_answer_names_it_and_writes_nothing(tmp_path: Path, shipyard, args, given, allowed) -> None:
    root = team_repo(tmp_path)
    result = shipyard("new-team", *args, "--no-input", repo=root)
    assert result.code == 1
    assert given in result.err, result.err
    assert allowed in result.err, result.err
    assert "nothing was written" in result.err
    assert "Traceback" not in result.err
    assert status(root) == ""


def test_an_interrupted_generation_leaves_nothing_behind(tmp_path: Path, shipyard) -> None:
    root = team_repo(tmp_path)
    # tests/teams is a file here, so placing the team's tests (the last files) fails after the others were written
    (root / "tests").mkdir()
    (root / "tests" / "teams").write_text("not a folder\n")
    commit(root, "a file where a folder goes")
    result = shipyard("new-team", "risk", "--no-input", repo=root)
    assert result.code == 1
    assert "nothing was written" in result.err
    assert status(root) == ""
    assert not list(root.glob(".new-team-*"))


def test_plain_cookiecutter_bakes_a_team_in_place(tmp_path: Path, shipyard) -> None:
    root = team_repo(tmp_path)
    answers = ["team=ops", "owner=@acme/ops", "model_kind=tabular-regressor", "gpu_training=no", "gpu_quota=0"]
    done = subprocess.run(
        [COOKIECUTTER, "--no-input", str(root / teams.TEMPLATE), *answers],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert added(root) == team_files("ops")
    assert not list(root.glob(".new-team-*"))
    assert shipyard("validate", repo=root).code == 0

    refused = subprocess.run(
        [COOKIECUTTER, "--no-input", str(root / teams.TEMPLATE), "team=Bad Name"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode != 0
    assert "answer 'team': got 'Bad Name'" in refused.stderr
    assert added(root) == team_files("ops")  # nothing more
    assert not list(root.glob(".new-team-*"))


# -- upgrades -----------------------------------------------------------------------------------------


def change_template(root: Path) -> None:
    """A template change: a new gate, and a feature renamed everywhere it is spelled."""
    template = root / teams.TEMPLATE
    gates = str(next(template.glob("*/models/*/*.yaml")).relative_to(root))
    edit(root, gates, '"pr_auc >= 0.1"', '"pr_auc >= 0.12"')
    edit(root, gates, '      - "log_loss <= 0.2"', '      - "log_loss <= 0.2"\n      - "brier <= 0.1"')
    for file in template.rglob("*"):
        if file.is_file() and "foreign_ratio_7d" in file.read_text():
            file.write_text(file.read_text().replace("foreign_ratio_7d", "foreign_share_7d"))
    commit(root, "template: a new gate, foreign_ratio_7d renamed")


def test_an_upgrade_keeps_the_teams_edits_applies_the_templates_and_reports_conflicts(tmp_path: Path, shipyard) -> None:
    root = team_repo(tmp_path)
    for team in ("risk", "ads"):
        assert shipyard("new-team", team, "--no-input", repo=root).code == 0
    commit(root, "two teams")
    assert shipyard("team", "upgrade", "risk", "ads", "--check", repo=root).code == 0
    # risk tunes its pipeline; ads changes the very gate the template will change
    edit(root, "pipelines/risk/train/pipeline.yaml", "max_iter: 200", "max_iter: 350")
    edit(root, "models/ads/ads-scorer.yaml", '"pr_auc >= 0.1"', '"pr_auc >= 0.2"')
    commit(root, "the teams' own edits")
    change_template(root)

    check = shipyard("team", "upgrade", "risk", "ads", "--check", repo=root)
    assert check.code == 2
    assert "2 of 2 teams behind" in check.out

    upgraded = shipyard("team", "upgrade", "risk", repo=root)
    assert upgraded.code == 0, upgraded.err
    assert "max_iter: 350" in (root / "pipelines/risk/train/pipeline.yaml").read_text()  # the team's edit stays
    scorer = (root / "models/risk/risk-scorer.yaml").read_text()
    assert '"pr_auc >= 0.12"' in scorer
    assert '"brier <= 0.1"' in scorer
    for path in ("features/risk/features.py", "features/risk/synthetic.py", "pipelines/risk/train/pipeline.py"):
        text = (root / path).read_text()
        assert "foreign_share_7d" in text, path
        assert "foreign_ratio_7d" not in text, path
    # the plan of the upgrade, in every plane it touches
    assert "What the upgrade changes" in upgraded.out
    assert "models/risk/" in upgraded.out
    assert "features/risk" in upgraded.out
    assert "pipelines/risk/Pipeline/train" in upgraded.out
    record = json.loads((root / "platform/teams/risk.answers.json").read_text())
    assert record["template"]["commit"] == git(root, "rev-parse", "HEAD").strip()
    commit(root, "upgrade risk")

    conflicted = shipyard("team", "upgrade", "ads", repo=root)
    assert conflicted.code == 1
    assert "CONFLICT models/ads/ads-scorer.yaml" in conflicted.out
    text = (root / "models/ads/ads-scorer.yaml").read_text()
    assert "<<<<<<< team" in text
    assert '"pr_auc >= 0.2"' in text
    assert '"pr_auc >= 0.12"' in text
    assert ">>>>>>> template@" in text

    check = shipyard("team", "upgrade", "risk", "--check", repo=root)
    assert check.code == 0
    assert "0 of 1 team behind" in check.out


def test_an_upgrade_refuses_a_team_without_an_answers_file_or_with_uncommitted_edits(tmp_path: Path, shipyard) -> None:
    root = team_repo(tmp_path)
    missing = shipyard("team", "upgrade", "recsys", repo=root)
    assert missing.code == 1
    assert "no answers file" in missing.err
    assert shipyard("new-team", "risk", "--no-input", repo=root).code == 0
    commit(root, "risk")
    change_template(root)
    edit(root, "pipelines/risk/train/pipeline.yaml", "max_iter: 200", "max_iter: 300")
    dirty = shipyard("team", "upgrade", "risk", repo=root)
    assert dirty.code == 1
    assert "uncommitted changes" in dirty.err
    assert "max_iter: 300" in (root / "pipelines/risk/train/pipeline.yaml").read_text()


# -- CODEOWNERS --------------------------------------------------------------------------------------


def test_team_lines_are_kept_sorted_and_replace_their_old_selves() -> None:
    text = "* @org/platform\n/.github/ @org/platform\n\n# Teams: sorted\n/models/b/ @b\n/features/b/ @b\n"
    merged = teams.with_lines(text, ["/features/a/ @a", "/models/b/ @b @b-leads"])
    head, _, section = merged.partition("# Teams: sorted\n")
    assert head == "* @org/platform\n/.github/ @org/platform\n\n"
    rows = [line.split() for line in section.splitlines()]
    assert rows == [["/features/a/", "@a"], ["/features/b/", "@b"], ["/models/b/", "@b", "@b-leads"]]
    assert teams.with_lines(merged, []) == merged  # stable
    fresh = teams.with_lines("* @org/platform\n", ["/models/a/ @a"])
    assert fresh.splitlines()[-2].startswith(teams.TEAMS_MARKER)
    with pytest.raises(ValueError, match="a comment inside the team section"):
        teams.with_lines(merged + "# stray\n/x/ @x\n", [])


def test_the_repositorys_own_teams_are_current_with_the_template(shipyard) -> None:
    """A pull request that changes the template upgrades the teams in the same change (`team upgrade --all`)."""
    record = json.loads((REPO_ROOT / "platform/teams/fraud.answers.json").read_text())
    assert record["template"]["path"] == teams.TEMPLATE
    result = shipyard("team", "upgrade", "--all", "--check", repo=REPO_ROOT)
    assert result.code == 0, result.out
    assert "0 of 1 team behind" in result.out


# -- live at once -------------------------------------------------------------------------------------


def _shipyard_process(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "shipyard"), "--repo", str(root), *args]
    env = dict(os.environ) | {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # the local services come from up
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)


def _predict(router: str, model: str) -> list[float]:
    row = {"amount": 18.5, "is_foreign": 0, "hour": 14, "txn_count_7d": 3}
    row |= {"amount_mean_7d": 42.0, "amount_max_7d": 90.0, "foreign_ratio_7d": 0.0}
    risky = row | {"amount": 900.0, "is_foreign": 1, "hour": 2}
    body = json.dumps({"instances": [row, risky]}).encode()
    request = urllib.request.Request(f"{router}/v1/models/{model}:predict", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return [float(p) for p in json.load(answer)["predictions"]]


@pytest.mark.e2e
def test_a_new_team_comes_up_next_to_fraud_and_both_predict(tmp_path: Path, shipyard) -> None:
    root = team_repo(tmp_path)
    made = shipyard("new-team", "risk", "--kind", "tabular-regressor", "--no-gpu-training", "--no-input", repo=root)
    assert made.code == 0, made.err
    commit(root, "team risk")
    try:
        up = _shipyard_process(root, "up")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        for team in ("fraud", "risk"):
            assert re.search(rf"{team}/{team}-scorer\s+v1 @champion", up.stdout), up.stdout
        listed = json.loads(_shipyard_process(root, "status", "--format", "json").stdout)["processes"]
        routers = {p["name"].split(" v")[0]: p["url"] for p in listed if p["name"].startswith("router ")}
        assert set(routers) == {"router fraud/fraud-scorer", "router risk/risk-scorer"}
        ordinary, suspicious = _predict(routers["router fraud/fraud-scorer"], "fraud-scorer")
        assert 0.0 < ordinary < suspicious < 1.0  # fraud: a probability, ranked
        low, high = _predict(routers["router risk/risk-scorer"], "risk-scorer")
        assert low < high  # risk: a score on the same scale as its label, ranked alike
    finally:
        down = _shipyard_process(root, "down")
    assert down.returncode == 0, down.stderr


def test_an_interactive_run_asks_what_the_flags_leave_out_and_asks_again_after_a_refusal(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from shipyard.cli import teams as cli_teams
    from shipyard.cli.app import cli

    root = team_repo(tmp_path)
    monkeypatch.setattr(cli_teams, "interactive", lambda: True)
    # display name, owner (refused, then a handle), group, domain, cost center, kind, GPU training,
    # quota (too many, then 0: no GPU training), budget; no flags, so every answer is asked
    answers = ["Risk Team", "acme", "@acme/risk", "", "", "CC-77", "tabular-regressor", "no", "99", "0", ""]
    result = CliRunner().invoke(cli, ["--repo", str(root), "new-team", "risk"], input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert "answer 'owner': got 'acme'" in result.output
    assert "answer 'gpu_quota': got '99'" in result.output
    record = json.loads((root / "platform/teams/risk.answers.json").read_text())["answers"]
    assert record["display_name"] == "Risk Team"
    assert record["owner"] == "@acme/risk"
    assert record["cost_center"] == "CC-77"
    assert record["gpu_quota"] == "0"
    assert record["model_kind"] == "tabular-regressor"
    assert record["gpu_training"] == "no"


def test_the_first_team_of_a_repository_without_teams(tmp_path: Path, shipyard) -> None:
    root = team_repo(tmp_path)
    for path in ("platform/teams", "features/fraud", "pipelines/fraud", "models/fraud"):
        shutil.rmtree(root / path)
    (root / ".github/CODEOWNERS").write_text(
        teams.with_lines((root / ".github/CODEOWNERS").read_text().split(teams.TEAMS_MARKER)[0], [])
    )
    commit(root, "no teams yet")
    made = shipyard("new-team", "risk", "--no-input", repo=root)
    assert made.code == 0, made.err
    assert added(root) == team_files("risk")
    checked = shipyard("validate", repo=root)
    assert checked.code == 0, checked.out + checked.err
