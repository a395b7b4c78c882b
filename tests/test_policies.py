"""The policy engine: rules from the planes, plugins and the repository's ``policies/*.py``; the waiver ledger;
each kind of bad rule or ledger is an error at its file and line, and nothing is applied."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Result, edit, example_repo, whole_template, write
from shipyard.core.render.markdown import render_markdown
from shipyard.core.waivers import load_waivers, waive
from shipyard.sdk.model import Diagnostic, Severity, SourcePosition

MODEL = "models/fraud/fraud-scorer.yaml"
TODAY = date(2026, 12, 2)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The example repo with the template's repository rules for model deployments."""
    root = example_repo(tmp_path)
    (root / "policies").mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "policies/models.py", root / "policies/models.py")
    return root


def findings(result: Result) -> list[dict]:
    return json.loads(result.out)["diagnostics"]


def line_of(root: Path, path: str, text: str) -> int:
    return next(n for n, line in enumerate((root / path).read_text().splitlines(), 1) if text in line)


def test_a_canary_of_80_percent_is_refused_with_the_rule_and_its_line(
    root: Path, shipyard: Callable[..., Result]
) -> None:
    edit(root, MODEL, "    percent: 10\n", "    percent: 80\n")
    result = shipyard("validate", repo=root)
    assert result.code == 1
    line = line_of(root, MODEL, "percent: 80")
    assert f"{MODEL}:{line}:14: spec.canary.percent: got 80 %, expected at most 50 % of traffic" in result.err
    assert "[SY-MOD-002]" in result.err
    assert "lower spec.canary.percent to 50 or less" in result.err  # the rule's fix


def test_the_template_passes_its_own_model_rules(root: Path, shipyard: Callable[..., Result]) -> None:
    result = shipyard("validate", "--format", "json", repo=root)
    assert result.code == 0, result.out
    assert not [d for d in findings(result) if d["rule"].startswith("SY-")]


WAIVER = """waivers:
  - rule: SY-MOD-004
    resource: "ModelDeployment/fraud/*"
    reason: one replica until the traffic review
    approver: "@platform-lead"
    expires: {expires}
"""


def test_a_waiver_in_force_lets_the_finding_through_and_keeps_it_visible(
    root: Path, shipyard: Callable[..., Result]
) -> None:
    edit(root, MODEL, "    min: 2\n", "    min: 1\n")
    assert shipyard("validate", repo=root).code == 1
    write(root, {"policies/waivers.yaml": WAIVER.format(expires="2999-12-31")})
    result = shipyard("validate", "--format", "json", repo=root)
    assert result.code == 0, result.out
    [waived] = [d for d in findings(result) if d["rule"] == "SY-MOD-004"]
    assert waived["severity"] == "waived"
    assert waived["subject"] == "ModelDeployment/fraud/fraud-scorer"
    assert waived["hint"] == "waived until 2999-12-31 by @platform-lead: one replica until the traffic review"
    text = shipyard("validate", repo=root)
    assert "waived: models/fraud/fraud-scorer.yaml" in text.err
    assert "0 errors, 1 waived." in text.err


def test_an_expired_waiver_is_a_mandatory_finding_at_its_line(root: Path, shipyard: Callable[..., Result]) -> None:
    edit(root, MODEL, "    min: 2\n", "    min: 1\n")
    write(root, {"policies/waivers.yaml": WAIVER.format(expires="2020-01-31")})
    result = shipyard("validate", "--format", "json", repo=root)
    assert result.code == 1
    rules = {d["rule"]: d for d in findings(result)}
    expired = rules["waivers/expired"]
    assert (expired["file"], expired["line"], expired["severity"]) == ("policies/waivers.yaml", 6, "error")
    assert "expired on 2020-01-31" in expired["message"]
    assert rules["SY-MOD-004"]["severity"] == "error"  # no longer waived


@pytest.mark.parametrize(
    ("ledger", "rule", "line", "text"),
    [
        (
            WAIVER.format(expires="2999-01-01").replace("SY-MOD-004", "SY-MOD-999"),
            "waivers/unknown-rule",
            2,
            "SY-MOD-999",
        ),
        (
            WAIVER.format(expires="2999-01-01").replace("    reason: one replica until the traffic review\n", ""),
            "waivers/invalid",
            2,
            "reason",
        ),
        (WAIVER.format(expires="2999-01-01").replace('"@platform-lead"', '""'), "waivers/invalid", 5, "approver"),
        (WAIVER.format(expires="2999-01-01").replace("2999-01-01", "next week"), "waivers/invalid", 6, "expires"),
        ("waivers:\n  - rule: [\n", "yaml/syntax", 3, ""),
    ],
    ids=["unknown-rule", "no-reason", "no-approver", "not-a-date", "not-yaml"],
)
def test_a_malformed_waiver_is_an_error_at_its_line_and_nothing_is_applied(
    root: Path, shipyard: Callable[..., Result], ledger: str, rule: str, line: int, text: str
) -> None:
    write(root, {"policies/waivers.yaml": ledger})
    result = shipyard("validate", "--format", "json", repo=root)
    assert result.code == 1, result.out
    [found] = [d for d in findings(result) if d["file"] == "policies/waivers.yaml"]
    assert found["rule"].split("/")[0] in (rule.split("/")[0], "spec")
    assert found["line"] == line, found
    assert text in found["message"] + found["key"]
    applied = shipyard("apply", "--target", "local", repo=root)
    assert applied.code == 1
    assert not (root / ".shipyard/local/applied.json").exists()


def test_a_waiver_that_matches_nothing_is_advisory(root: Path, shipyard: Callable[..., Result]) -> None:
    write(root, {"policies/waivers.yaml": WAIVER.format(expires="2999-12-31")})
    result = shipyard("validate", "--format", "json", repo=root)
    assert result.code == 0
    [unused] = [d for d in findings(result) if d["rule"] == "waivers/unused"]
    assert (unused["severity"], unused["line"]) == ("warning", 2)


def test_waiving_is_pure_and_matches_a_glob_over_the_subject_or_the_file(tmp_path: Path) -> None:
    write(tmp_path, {"policies/waivers.yaml": WAIVER.format(expires="2026-12-02")})
    waivers, problems = load_waivers(tmp_path, {"SY-MOD-004"}, TODAY)  # the last day counts
    assert (len(waivers), problems) == (1, [])
    assert load_waivers(tmp_path, {"SY-MOD-004"}, date(2026, 12, 3))[1][0].rule == "waivers/expired"
    about = Diagnostic("SY-MOD-004", "one replica", SourcePosition("models/fraud/x.yaml", 3, 1))
    other = Diagnostic("SY-MOD-004", "one replica", SourcePosition("models/search/x.yaml", 3, 1))
    marked = waive(
        [
            Diagnostic("SY-MOD-004", "m", SourcePosition(MODEL, 1, 1), subject="ModelDeployment/fraud/fraud-scorer"),
            Diagnostic("SY-MOD-004", "m", SourcePosition(MODEL, 1, 1), subject="ModelDeployment/search/ranker"),
            about,
            other,
        ],
        waivers,
        {"SY-MOD-004"},
    )
    assert [d.severity for d in marked] == [Severity.WAIVED, Severity.ERROR, Severity.ERROR, Severity.ERROR]


RAISES = """from shipyard.sdk import rule


@rule("SY-ACME-001", "Always raises.", target="spec:Team")
def raises(ctx):
    teams = list(ctx.specs.of_kind("Team"))
    return [teams[99]]
"""


RAISES_ON_ONE = """from shipyard.sdk import rule


@rule("SY-ACME-002", "Raises on one team.", target="spec:Team")
def raises_on_one(ctx):
    return [{"recsys": None}[t.name].x for t in ctx.specs.of_kind("Team") if t.name == "recsys"]
"""


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("import nosuchmodule\n", "policies/acme.py:1: the rule module failed to import: ModuleNotFoundError"),
        ("x = 1\ndef broken(:\n", "policies/acme.py:2: the rule module failed to import: SyntaxError"),
        (
            "from shipyard.sdk import rule\n\n@rule('bad id', 'x', target='repository')\ndef f(ctx):\n    return []\n",
            "policies/acme.py:3: the rule module failed to import: ValueError: policy id 'bad id'",
        ),
        (
            "from shipyard.sdk import rule\n\n@rule('SY-MOD-002', 'x', target='repository')\n"
            "def f(ctx):\n    return []\n",
            "rule SY-MOD-002 is defined twice (also by repository (policies/acme.py))",
        ),
        (RAISES, "rule SY-ACME-001 raised IndexError: list index out of range"),
        (RAISES_ON_ONE, "rule SY-ACME-002 raised AttributeError"),
        (RAISES_ON_ONE, "on Team/recsys (platform/teams/recsys.yaml)"),
    ],
    ids=["import-error", "syntax-error", "bad-id", "duplicate-id", "raises", "raises-on-one", "names-the-input"],
)
def test_a_bad_rule_module_is_an_error_naming_its_file_and_nothing_is_applied(
    root: Path, shipyard: Callable[..., Result], module: str, message: str
) -> None:
    write(root, {"policies/acme.py": module})
    for verb in (("validate",), ("apply", "--target", "local")):
        result = shipyard(*verb, repo=root)
        assert result.code == 1, result.err
        assert message in result.err
        assert "Traceback" not in result.err
    assert not (root / ".shipyard/local/applied.json").exists()


def test_policies_lists_every_rule_with_its_origin_and_references(root: Path, shipyard: Callable[..., Result]) -> None:
    result = shipyard("policies", "--format", "json", repo=root)
    assert result.code == 0
    rules = {r["id"]: r for r in json.loads(result.out)}
    assert rules["SY-TEN-001"]["origin"] == "built-in"
    assert rules["SY-TEN-001"]["references"] == ["kyverno:disallow-default-namespace"]
    assert rules["SY-MOD-002"] | {"hint": ""} == {
        "id": "SY-MOD-002",
        "title": "A canary takes at most half of the traffic.",
        "target": "spec:ModelDeployment",
        "enforcement": "mandatory",
        "references": [],
        "origin": "repository (policies/models.py)",
        "hint": "",
    }
    assert rules["SY-TEN-003"]["enforcement"] == "advisory"
    text = shipyard("policies", repo=root)
    assert "SY-MOD-002" in text.out


def test_the_pr_comment_lists_mandatory_failures_then_advisory_then_waived() -> None:
    from shipyard.core.plan import Plan

    at = SourcePosition(MODEL, 1, 1)
    found = [
        Diagnostic("SY-A-001", "waived one", at, severity=Severity.WAIVED),
        Diagnostic("SY-A-002", "advisory one", at, severity=Severity.WARNING),
        Diagnostic("SY-A-003", "mandatory one", at),
    ]
    text = render_markdown(Plan("dev", (), {}), found)
    assert text.index("SY-A-003") < text.index("SY-A-002") < text.index("SY-A-001")
    assert ":white_check_mark: waived" in text


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """The whole template: specs, the infra program and its stacks, the repository's rules and CODEOWNERS."""
    return whole_template(tmp_path)


@pytest.mark.parametrize(
    ("plane", "path", "old", "new", "rule", "where", "fix"),
    [
        (
            "infra",
            "infra/components/nodepools.py",
            "if pool.is_gpu\n                else None,",
            "if False\n                else None,",
            "SY-GPU-001",
            "Pulumi.dev.yaml",
            "nvidia.com/gpu",
        ),
        (
            "infra",
            "infra/components/storage.py",
            'sse_algorithm="aws:kms",',
            'sse_algorithm="AES256",',
            "SY-AWS-001",
            "Pulumi.dev.yaml",
            "aws:kms",
        ),
        (
            "models",
            MODEL,
            "  runtime: mlflow\n",
            "  runtime: custom\n  image: ghcr.io/shipyard-dev/fraud-scorer:latest\n",
            "SY-WRK-010",
            MODEL,
            "tag",
        ),
    ],
    ids=["gpu-pool-without-taint", "bucket-without-kms", "latest-image"],
)
def test_a_broken_guardrail_stops_the_plan_until_a_waiver_covers_it(
    template: Path,
    shipyard: Callable[..., Result],
    plane: str,
    path: str,
    old: str,
    new: str,
    rule: str,
    where: str,
    fix: str,
) -> None:
    args = ("plan", "--plane", plane, "--target", "base:HEAD", "--env", "dev", "--format", "json")
    assert shipyard(*args, repo=template).code == 0  # the template passes its own rules
    edit(template, path, old, new)
    stopped = shipyard(*args, repo=template)
    assert stopped.code == 1
    found = [d for d in findings(stopped) if d["rule"] == rule]
    assert found, stopped.out
    assert {d["severity"] for d in found} == {"error"}
    assert all(d["file"] == where and d["line"] for d in found), found
    assert all(fix in d["message"] + d["hint"] for d in found), found
    write(
        template,
        {
            "policies/waivers.yaml": f"waivers:\n  - rule: {rule}\n    resource: '*'\n"
            "    reason: accepted for the test\n    approver: '@platform-lead'\n    expires: 2999-12-31\n"
        },
    )
    waived = shipyard(*args, repo=template)
    assert waived.code == 0, waived.out
    assert {d["severity"] for d in findings(waived) if d["rule"] == rule} == {"waived"}


#: Each rule of policies/models.py: an edit of the example deployment that breaks it (the template passes them all).
MODEL_CASES = {
    "SY-MOD-002": ("    percent: 10\n", "    percent: 60\n", "spec.canary.percent"),
    "SY-MOD-003": ("    prod: {alias: champion, version: 1}", "    prod: {alias: champion}", "spec.serve.prod"),
    "SY-MOD-004": ("    min: 2\n", "    min: 1\n", "spec.replicas.min"),
    "SY-MOD-005": ("    noWorseThanCurrent:\n      metric: roc_auc\n      by: 0.02\n", "", "spec.gates"),
    "SY-MOD-006": (
        "dataChecks: [transactions, user-stats]",
        "dataChecks: [transactions, user-stat]",
        "spec.gates.dataChecks[1]",
    ),
}


def test_every_model_rule_has_a_case() -> None:
    from shipyard.engine.policies import repository_policies

    models = {p.id for p, file in repository_policies(REPO_ROOT) if file == "policies/models.py"}
    assert models == set(MODEL_CASES)


@pytest.mark.parametrize("rule_id", sorted(MODEL_CASES))
def test_each_model_rule_finds_its_failing_case_at_the_field(
    root: Path, shipyard: Callable[..., Result], rule_id: str
) -> None:
    old, new, key = MODEL_CASES[rule_id]
    passing = shipyard("validate", "--format", "json", repo=root)
    assert [d for d in findings(passing) if d["rule"] == rule_id] == []
    edit(root, MODEL, old, new)
    failing = shipyard("validate", "--format", "json", repo=root)
    [found] = [d for d in findings(failing) if d["rule"] == rule_id]
    assert (found["file"], found["key"], found["severity"]) == (MODEL, key, "error")
    assert found["hint"]
    assert failing.code == 1
