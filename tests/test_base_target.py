"""Planning against another git revision: how a pull request sees exactly what it changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import Result, commit, git, team_yaml, write
from shipyard.engine.revisions import KEPT_TREES

Run = Callable[..., Result]


def changes(result: Result) -> list[tuple[str, str, list[str]]]:
    plan = json.loads(result.out)["plan"]
    return [
        (c["action"], c["key"], [".".join(map(str, d["path"])) for d in c["diffs"]])
        for c in plan["changes"]
        if c["action"] != "noop"
    ]


def test_an_edit_shows_as_exactly_that_field(shipyard: Run, repo: Path) -> None:
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud", gpu=8)})
    result = shipyard("plan", "--target", "base:HEAD", "--format", "json", repo=repo)
    assert result.code == 0
    assert changes(result) == [
        ("update", "tenancy/fraud/ResourceQuota/team-quota", ["spec.hard.requests.nvidia.com/gpu"]),
    ]
    commit(repo, "more GPUs")
    after_commit = shipyard("plan", "--target", "base:HEAD~1", "--format", "json", repo=repo)
    assert changes(after_commit) == changes(result)
    text = shipyard("plan", "--target", "base:HEAD~1", repo=repo).out
    assert '~ spec.hard["requests.nvidia.com/gpu"]: "2" -> "8"' in text


def test_new_and_removed_teams(shipyard: Run, repo: Path) -> None:
    (repo / "platform/teams/search.yaml").unlink()
    write(repo, {"platform/teams/risk.yaml": team_yaml("risk")})
    summary = json.loads(shipyard("plan", "-t", "base:HEAD", "--format", "json", repo=repo).out)["plan"]["summary"]
    assert summary == {"create": 6, "update": 0, "delete": 6, "noop": 6}


def test_planning_a_revision_leaves_git_untouched(shipyard: Run, repo: Path) -> None:
    write(repo, {".gitignore": ".shipyard/\n"})  # as in the template: the plan cache is local state
    commit(repo, "ignore local state")
    before = (git(repo, "status", "--porcelain"), git(repo, "worktree", "list"), git(repo, "stash", "list"))
    assert shipyard("plan", "-t", "base:HEAD", repo=repo).code == 0
    after = (git(repo, "status", "--porcelain"), git(repo, "worktree", "list"), git(repo, "stash", "list"))
    assert before == after


def test_unknown_revision_is_a_clear_user_error(shipyard: Run, repo: Path) -> None:
    result = shipyard("plan", "-t", "base:no-such-branch", repo=repo)
    assert result.code == 1
    assert "git revision 'no-such-branch' not found" in result.err
    assert "fetch-depth: 0" in result.err
    assert shipyard("plan", "-t", "base:", repo=repo).code == 1


def test_invalid_specs_at_the_base_revision_are_reported_as_such(shipyard: Run, repo: Path) -> None:
    write(repo, {"platform/teams/fraud.yaml": "kind: [\n"})
    commit(repo, "broken")
    write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud")})
    result = shipyard("plan", "-t", "base:HEAD", repo=repo)
    assert result.code == 1
    assert "the specs at base revision 'HEAD' do not validate" in result.err


def test_applying_to_a_revision_is_refused(shipyard: Run, repo: Path) -> None:
    result = shipyard("apply", "-t", "base:HEAD", repo=repo)
    assert result.code == 1
    assert "a git revision is only a baseline" in result.err


def test_a_base_commits_tree_is_kept_and_read_again_and_old_ones_pruned(shipyard: Run, repo: Path) -> None:
    kept = repo / ".shipyard" / "cache" / "trees"
    assert shipyard("plan", "-t", "base:HEAD", repo=repo).code == 0
    head = git(repo, "rev-parse", "HEAD").strip()
    assert [t.name for t in kept.iterdir()] == [head]
    inode = (kept / head / "platform/teams/fraud.yaml").stat().st_ino
    assert shipyard("plan", "-t", "base:HEAD", repo=repo).code == 0
    assert (kept / head / "platform/teams/fraud.yaml").stat().st_ino == inode  # read again, not written again

    for gpus in range(3, 4 + KEPT_TREES):  # the first plans against the tree kept above
        write(repo, {"platform/teams/fraud.yaml": team_yaml("fraud", gpu=gpus)})
        commit(repo, f"{gpus} GPUs")
        assert shipyard("plan", "-t", "base:HEAD~1", repo=repo).code == 0
    assert len(list(kept.iterdir())) == KEPT_TREES
    assert head not in {t.name for t in kept.iterdir()}  # the least recently used went first
