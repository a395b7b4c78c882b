"""`shipyard owners`: whose review a change needs, by GitHub's CODEOWNERS rule (the last matching line wins)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import Result, commit, git, write
from shipyard.core.owners import parse_codeowners, reviews

Run = Callable[..., Result]

CODEOWNERS = """\
# comment
*                       @acme/platform
/platform/teams/fraud.yaml  @acme/platform @fraud-leads
/features/fraud/        @fraud-leads @fraud
/models/fraud/          @fraud-leads @fraud
/models/fraud/drafts/   # no owner: GitHub leaves these unowned
docs/**/*.md            @acme/writers
"""


def test_the_last_matching_line_owns_a_path() -> None:
    table = parse_codeowners(CODEOWNERS)

    def owner(path: str) -> tuple[str, ...] | None:
        line = table.last(path)
        return None if line is None else line.owners

    assert owner("README.md") == ("@acme/platform",)
    assert owner("models/fraud/a.yaml") == ("@fraud-leads", "@fraud")
    assert owner("models/fraud/drafts/x.yaml") == ()  # its last matching line names nobody
    assert owner("docs/a/b/guide.md") == ("@acme/writers",)
    assert owner("features/fraudulent/x.py") == ("@acme/platform",)  # a literal folder is no prefix match
    assert parse_codeowners("/only/ @x\n").last("elsewhere.txt") is None


def test_reviews_group_files_by_owners_with_the_unowned_last() -> None:
    found = reviews(
        parse_codeowners(CODEOWNERS),
        ["features/fraud/f.py", "models/fraud/m.yaml", "README.md", "models/fraud/drafts/d.yaml", "infra/x.py"],
    )
    assert [(r.owners, r.lines, r.files) for r in found] == [
        (("@acme/platform",), (2,), ("README.md", "infra/x.py")),
        (("@fraud-leads", "@fraud"), (4, 5), ("features/fraud/f.py", "models/fraud/m.yaml")),
        ((), (), ("models/fraud/drafts/d.yaml",)),
    ]


def test_a_changes_reviewers_from_git(shipyard: Run, repo: Path) -> None:
    write(repo, {".github/CODEOWNERS": CODEOWNERS})
    commit(repo, "owners")
    base = git(repo, "rev-parse", "HEAD").strip()
    write(repo, {"models/fraud/scorer.yaml": "kind: x\n", "notes.txt": "untracked\n"})
    commit(repo, "a model")
    (repo / "platform/teams/fraud.yaml").write_text("changed, not committed\n")
    (repo / "scratch.md").write_text("untracked\n")

    result = shipyard("owners", "--changed", base, "--format", "json", repo=repo)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["codeowners"] == ".github/CODEOWNERS"
    assert [(r["owners"], r["files"]) for r in data["reviews"]] == [
        (["@acme/platform"], ["notes.txt", "scratch.md"]),
        (["@acme/platform", "@fraud-leads"], ["platform/teams/fraud.yaml"]),
        (["@fraud-leads", "@fraud"], ["models/fraud/scorer.yaml"]),
    ]
    text = shipyard("owners", "--changed", base, repo=repo).out
    assert "@fraud-leads @fraud  (.github/CODEOWNERS:5)\n  models/fraud/scorer.yaml" in text
    markdown = shipyard("owners", "platform/teams/search.yaml", "--format", "markdown", repo=repo).out
    assert "| @acme/platform | `platform/teams/search.yaml` |" in markdown


def test_bad_input_is_a_clear_error(shipyard: Run, repo: Path) -> None:
    nothing = shipyard("owners", repo=repo)
    assert nothing.code == 1
    assert "name the paths, or the base of a change" in nothing.err
    missing = shipyard("owners", "README.md", repo=repo)
    assert missing.code == 1
    assert "no CODEOWNERS file" in missing.err
    write(repo, {".github/CODEOWNERS": CODEOWNERS})
    unknown = shipyard("owners", "--changed", "no-such-branch", repo=repo)
    assert unknown.code == 1
    assert "git revision 'no-such-branch' not found" in unknown.err
