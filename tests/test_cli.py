"""Every command through the CLI's real entry point: exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Result, team_yaml, write
from shipyard import __version__
from shipyard.engine import registry as registry_module
from shipyard.sdk.errors import SpecError

Run = Callable[..., Result]


def test_help_lists_every_command(shipyard: Run) -> None:
    result = shipyard("--help")
    assert result.code == 0
    for command in ("validate", "plan", "apply", "plugins", "schema", "version"):
        assert command in result.out
    assert "Exit codes" in result.out


def test_version(shipyard: Run) -> None:
    assert shipyard("version").out.startswith(f"shipyard {__version__}")


def test_usage_errors_are_user_errors_not_changes(shipyard: Run) -> None:
    result = shipyard("plan", "--format", "yaml")
    assert result.code == 1
    assert "Invalid value for '--format'" in result.err
    assert shipyard("no-such-command").code == 1


def test_validate_ok(shipyard: Run, repo: Path) -> None:
    result = shipyard("validate", repo=repo)
    assert (result.code, result.out) == (0, "ok: 2 specs in 2 files are valid.\n")


def test_validate_reports_typo_type_and_missing_team_with_positions(shipyard: Run, repo: Path) -> None:
    write(
        repo,
        {
            "platform/teams/fraud.yaml": team_yaml("fraud").replace("    gpu:", "    gpus:"),
            "platform/teams/search.yaml": team_yaml("search").replace("cpu: 8", "cpu: [8]"),
            "vector-indexes/x.yaml": "apiVersion: shipyard.dev/v1alpha1\nkind: VectorIndex\nmetadata:\n"
            "  name: x\n  team: nobody\nspec:\n  dimensions: 3\n  embeddingModel: m\n",
        },
    )
    result = shipyard("validate", repo=repo)
    assert result.code == 1
    assert result.out == ""
    assert "platform/teams/fraud.yaml:10:5: spec.quota.gpus: got unknown key 'gpus'" in result.err
    assert "platform/teams/search.yaml:11:10: spec.quota.cpu: got a list of 1, expected a string" in result.err
    assert "vector-indexes/x.yaml:5:9: metadata.team: got team 'nobody'" in result.err
    assert "     |     ^^^^\n" in result.err  # the caret snippet
    assert result.err.rstrip().endswith("3 errors.")
    assert "Traceback" not in result.err


def test_validate_github_annotations(shipyard: Run, repo: Path) -> None:
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud").replace("    gpu:", "    gpus:")})
    result = shipyard("validate", "--format", "github", repo=repo)
    assert result.code == 1
    assert result.out.startswith("::error file=platform/teams/fraud.yaml,line=10,col=5,title=spec/unknown-key::")


def test_validate_json(shipyard: Run, repo: Path) -> None:
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud", namespace="kube-system")})
    result = shipyard("validate", "--format", "json", repo=repo)
    assert result.code == 1
    (finding,) = json.loads(result.out)["diagnostics"]
    assert (finding["rule"], finding["line"], finding["key"]) == ("SY-TEN-001", 8, "spec.namespace")


def test_advisory_policies_warn_but_pass(shipyard: Run, repo: Path) -> None:
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud", gpu=4, budget=0)})
    result = shipyard("validate", repo=repo)
    assert result.code == 0
    assert "warning: platform/teams/fraud.yaml:14:17: spec.budget.monthlyUsd" in result.err


def test_plan_local_then_apply_then_no_changes(shipyard: Run, repo: Path) -> None:
    first = shipyard("plan", "--detailed-exitcode", repo=repo)
    assert first.code == 2
    assert "Plan: 12 to create, 0 to update, 0 to delete, 0 unchanged." in first.out
    applied = shipyard("apply", repo=repo)
    assert applied.code == 0
    assert "Applied 12 changes to local" in applied.out
    again = shipyard("plan", "--detailed-exitcode", repo=repo)
    assert (again.code, again.out.splitlines()[-1]) == (0, "No changes. 12 unchanged.")


def test_plan_formats_and_out_file(shipyard: Run, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    markdown = shipyard("plan", "--format", "markdown", "--out", str(out), repo=repo)
    assert markdown.code == 0
    assert markdown.out.startswith("<!-- shipyard-plan:local -->")
    saved = json.loads(out.read_text())
    assert saved["plan"]["summary"]["create"] == 12
    assert json.loads(shipyard("plan", "--format", "json", repo=repo).out)["plan"]["hash"] == saved["plan"]["hash"]
    github = shipyard("plan", "--format", "github", repo=repo).out.splitlines()
    assert github[0].startswith("::notice file=platform/teams/fraud.yaml,line=1,col=1,title=shipyard plan::create")


def test_a_markdown_plan_keeps_under_max_chars(shipyard: Run, repo: Path) -> None:
    whole = shipyard("plan", "--format", "markdown", repo=repo).out
    assert len(whole) > 2000
    short = shipyard("plan", "--format", "markdown", "--max-chars", "2000", repo=repo)
    assert short.code == 0
    assert len(short.out) <= 2000
    assert short.out.startswith("<!-- shipyard-plan:local -->")
    assert "plan.json" in short.out  # the rest is in the plan file
    refused = shipyard("plan", "--format", "markdown", "--max-chars", "100", repo=repo)
    assert refused.code == 1  # a usage error is a user error
    assert "100 is not in the range x>=2000" in refused.err


def test_bad_specs_stop_plan_and_apply_before_anything_happens(shipyard: Run, repo: Path) -> None:
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud").replace("gpu: 2", "gpu: many")})
    for command in ("plan", "apply"):
        result = shipyard(command, repo=repo)
        assert result.code == 1
        assert "platform/teams/fraud.yaml:10:10: spec.quota.gpu: got 'many', expected a whole number" in result.err
        assert result.out == ""
    assert not (repo / ".shipyard").exists()


def test_mandatory_policy_stops_apply(shipyard: Run, repo: Path) -> None:
    write(repo, {"platform/teams/search.yaml": team_yaml("search", namespace="fraud")})
    plan = shipyard("plan", repo=repo)
    assert plan.code == 1
    assert "SY-TEN-002" in plan.err
    apply = shipyard("apply", repo=repo)
    assert apply.code == 1
    assert not (repo / ".shipyard" / "local" / "tenancy").exists()


def test_cloud_targets_say_they_cannot_be_reached(shipyard: Run, repo: Path) -> None:
    unknown = shipyard("plan", "--target", "dev", repo=repo)  # no Environment spec declares it yet
    assert (unknown.code, "unknown environment 'dev'" in unknown.err) == (1, True)
    write(repo, {"platform/environments/dev.yaml": (REPO_ROOT / "platform/environments/dev.yaml").read_text()})
    result = shipyard("plan", "--target", "dev", repo=repo)
    assert result.code == 1
    assert "cannot observe target 'dev'" in result.err
    refused = shipyard("apply", "--target", "dev", repo=repo)
    assert (refused.code, "refusing to apply an unreviewed plan to 'dev'" in refused.err) == (1, True)
    assert shipyard("plan", "--target", "Not A Target", repo=repo).code == 1


def test_schema_writes_and_checks(shipyard: Run, repo: Path, tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    assert shipyard("schema", "--check", "--out", str(folder), repo=repo).code == 1
    assert shipyard("schema", "--out", str(folder), repo=repo).code == 0
    assert json.loads((folder / "team.schema.json").read_text())["title"] == "Team"
    assert shipyard("schema", "--check", "--out", str(folder), repo=repo).code == 0


def test_internal_errors_exit_3_and_show_a_traceback_only_when_verbose(
    shipyard: Run, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode() -> None:
        raise RuntimeError("plugin exploded")

    monkeypatch.setattr(registry_module, "discover", explode)
    quiet = shipyard("validate", repo=repo)
    assert quiet.code == 3
    assert "internal error: RuntimeError: plugin exploded (rerun with --verbose" in quiet.err
    assert "Traceback" not in quiet.err
    loud = shipyard("--verbose", "validate", repo=repo)
    assert loud.code == 3
    assert "Traceback" in loud.err


def test_user_errors_never_show_tracebacks_even_in_json(
    shipyard: Run, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bad() -> None:
        raise SpecError([])

    monkeypatch.setattr(registry_module, "discover", bad)
    result = shipyard("validate", "--format", "json", repo=repo)
    assert result.code == 1
    assert json.loads(result.out) == {"diagnostics": []}


def test_installed_console_script_runs(repo: Path) -> None:
    script = Path(sys.executable).parent / "shipyard"
    done = subprocess.run([str(script), "--repo", str(repo), "validate"], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, "ok: 2 specs in 2 files are valid.\n")


def test_the_repository_itself_validates(shipyard: Run) -> None:
    assert shipyard("validate", repo=REPO_ROOT).code == 0


def test_down_purge_removes_the_local_state(shipyard: Run, repo: Path) -> None:
    assert shipyard("apply", repo=repo).code == 0
    assert (repo / ".shipyard/local").is_dir()
    result = shipyard("down", "--purge", repo=repo)
    assert result.code == 0
    assert "removed .shipyard/" in result.out
    assert not (repo / ".shipyard").exists()
