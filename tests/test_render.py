"""Renderers are pure and checked against golden files (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shipyard.core.plan import Plan, make_plan
from shipyard.core.render.diagnostics import format_diagnostic, format_diagnostics
from shipyard.core.render.github import render_github
from shipyard.core.render.jsonout import render_json
from shipyard.core.render.markdown import GITHUB_COMMENT_LIMIT, marker, render_markdown
from shipyard.core.render.text import render_text
from shipyard.sdk.model import Diagnostic, Resource, Severity, SourcePosition

GOLDEN = Path(__file__).parent / "golden"
RULES = {"tenancy": (20, {}), "models": (50, {})}


def sample_plan() -> Plan:
    quota = SourcePosition("platform/teams/fraud.yaml", 9, 3)
    desired = [
        Resource("tenancy", "Namespace", "fraud", "fraud", {"metadata": {"name": "fraud"}}),
        Resource(
            "tenancy",
            "ResourceQuota",
            "fraud",
            "team-quota",
            {"spec": {"hard": {"requests.nvidia.com/gpu": "8", "requests.cpu": "64"}}},
            quota,
        ),
        Resource(
            "models",
            "InferenceService",
            "fraud",
            "scorer",
            {"spec": {"replicas": 2}, "alias": "champion"},
            payload={"manifest": "for the applier only"},  # in the JSON plan and its hash; never shown
        ),
    ]
    observed = [
        Resource("tenancy", "Namespace", "fraud", "fraud", {"metadata": {"name": "fraud"}}),
        Resource(
            "tenancy",
            "ResourceQuota",
            "fraud",
            "team-quota",
            {"spec": {"hard": {"requests.nvidia.com/gpu": "4", "limits.cpu": "64"}}},
        ),
        Resource("models", "InferenceService", "fraud", "legacy", {"spec": {"replicas": 1}}),
    ]
    return make_plan("base:HEAD~1", desired, observed, RULES, facts={"models": {"fraud/scorer": {"champion": 3}}})


def sample_findings() -> list[Diagnostic]:
    return [
        Diagnostic.mismatch(
            "spec/unknown-key",
            got="unknown key 'gpus'",
            expected="one of cpu, gpu, memory",
            hint="did you mean 'gpu'?",
            position=SourcePosition("platform/teams/fraud.yaml", 10, 5),
            key_path="spec.quota.gpus",
            snippet="    gpus: 4",
        ),
        Diagnostic(
            "SY-TEN-003",
            "got a budget of 0, expected a budget, with commas, colons: and 100% | pipes",
            SourcePosition("platform/teams/x.yaml", 3, 1),
            severity=Severity.WARNING,
        ),
    ]


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        if os.environ.get("CI"):  # a golden file changes in a commit a reviewer reads, never in CI
            pytest.fail("UPDATE_GOLDEN is refused under CI: run it locally and commit the golden files")
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_golden_files_are_never_rewritten_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPDATE_GOLDEN", "1")
    monkeypatch.setenv("CI", "true")
    before = (GOLDEN / "plan.txt").read_text()
    with pytest.raises(pytest.fail.Exception, match="UPDATE_GOLDEN is refused under CI"):
        golden("plan.txt", "rewritten")
    assert (GOLDEN / "plan.txt").read_text() == before


def test_text_golden() -> None:
    golden("plan.txt", render_text(sample_plan()).plain + "\n")


def test_text_with_unchanged_golden() -> None:
    golden("plan-all.txt", render_text(sample_plan(), show_unchanged=True).plain + "\n")


def test_markdown_golden() -> None:
    golden("plan.md", render_markdown(sample_plan(), sample_findings()))


def test_json_golden() -> None:
    golden("plan.json", render_json(sample_plan(), sample_findings()))


def test_full_json_golden() -> None:
    """``--full``: every unchanged Resource with its bodies, as plan files were before they were lean."""
    golden("plan-full.json", render_json(sample_plan(), sample_findings(), full=True))


def test_github_golden() -> None:
    golden("plan.github", render_github(sample_plan(), sample_findings()))


def test_diagnostics_golden() -> None:
    golden("diagnostics.txt", format_diagnostics(sample_findings()) + "\n")


def test_caret_sits_under_the_reported_column() -> None:
    text = format_diagnostic(sample_findings()[0]).splitlines()
    source, caret = text[1], text[2]
    assert source.endswith("    gpus: 4")
    assert caret.index("^") == source.index("gpus")
    assert caret.count("^") == len("gpus")


def test_no_changes_reads_as_such() -> None:
    plan = make_plan("local", [], [], {})
    assert render_text(plan).plain.endswith("No changes. 0 unchanged.")
    assert "No changes." in render_markdown(plan)


@pytest.mark.parametrize("count", [2_000, 20_000])
def test_markdown_stays_under_githubs_limit(count: int) -> None:
    desired = [
        Resource("models", "InferenceService", f"team-{i}", f"model-{i}", {"spec": {"v": i, "pad": "x" * 40}})
        for i in range(count)
    ]
    plan = make_plan("base:main", desired, [], RULES)
    text = render_markdown(plan, artifact="plan-123.json")
    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert text.startswith(marker("base:main"))
    assert f"{count} to create" in text
    assert "`plan-123.json` artifact" in text
    assert "more" in text  # the cut is announced, never silent
    assert json.loads(render_json(plan))["plan"]["summary"]["create"] == count


def test_findings_are_grouped_by_rule_so_the_comment_always_fits() -> None:
    from shipyard.core.plan import Plan
    from shipyard.core.render.markdown import GITHUB_COMMENT_LIMIT, render_markdown
    from shipyard.sdk.model import Diagnostic, Severity, SourcePosition

    def many(rule: str, count: int, severity: Severity) -> list[Diagnostic]:
        return [
            Diagnostic(
                rule,
                "got no local data, expected a sample " * 5,
                SourcePosition(f"teams/t{i}.yaml", 3, 1),
                severity=severity,
            )
            for i in range(count)
        ]

    # 500 teams' worth of findings: one row each would be some 600 k characters.
    found = many("features/data-check", 2000, Severity.WARNING) + many("SY-X-001", 2000, Severity.ERROR)
    found += many("SY-X-002", 1000, Severity.WAIVED)
    text = render_markdown(Plan("dev", (), {}), found)
    assert len(text) < GITHUB_COMMENT_LIMIT
    rows = [line for line in text.splitlines() if line.startswith("| :")]
    assert [row.split(" | ")[1:3] for row in rows] == [
        ["`SY-X-001`", "2000"],
        ["`features/data-check`", "2000"],
        ["`SY-X-002`", "1000"],
    ]
    assert "`teams/t0.yaml:3:1`, `teams/t1.yaml:3:1`, `teams/t2.yaml:3:1` and 1997 more" in rows[0]
    # Many rules at once: the rows stop at the findings' half of the budget, and say what is left.
    varied = [d for i in range(400) for d in many(f"SY-X-{i:03d}", 1, Severity.ERROR)]
    tight = render_markdown(Plan("dev", (), {}), varied, limit=20_000)
    assert len(tight) < 20_000
    assert "more findings of" in tight


def test_the_monthly_cost_delta_adds_up_what_the_changed_bills_state() -> None:
    def bill(stack: str, name: str, usd: float) -> Resource:
        return Resource("infra", "Cost", stack, name, {"monthlyCostUsd": usd, "gpusAtMax": 2})

    desired = [
        bill("dev", "node-pools", 3820.53),
        bill("prod", "node-pools", 900.0),
        bill("staging", "node-pools", 50.0),
    ]
    observed = [bill("dev", "node-pools", 1470.51), bill("prod", "node-pools", 900.0)]
    plan = make_plan("base:main", desired, observed, RULES)
    line = "Monthly cost at max size: $1,470.51 → $3,870.53 (+2,400.02 USD)."  # prod unchanged; staging new
    assert line in render_markdown(plan, [])
    assert line in render_text(plan).plain
    none = make_plan("base:main", [bill("dev", "node-pools", 1.0)], [bill("dev", "node-pools", 1.0)], RULES)
    assert "Monthly cost" not in render_markdown(none, [])
