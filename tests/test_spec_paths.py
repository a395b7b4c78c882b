"""Spec paths a pull request could turn into a leak: symbolic links, and lines too long to echo.

A spec that is a symbolic link (or sits under a linked folder) is refused before it is read, at
the link's own path, so `/proc/self/environ` or a secrets file never reaches CI logs, annotations
or PR comments; and no diagnostic echoes more than a bounded piece of a source line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, team_yaml, write
from shipyard.core.render.diagnostics import MAX_SNIPPET, format_diagnostic
from shipyard.core.repo import load_specs
from shipyard.engine.registry import Registry
from shipyard.sdk.errors import SpecError
from shipyard.sdk.model import Diagnostic, SourcePosition

SECRET = "s3cr3t-planted"
# what a link might reach: a dotenv-style secrets file, a passwd-like file, the NUL-separated environ
LEAKY = {
    "dotenv": f"TOKEN={SECRET}\n",
    "passwd": f"root:x:0:0:TOKEN={SECRET}:/root:/bin/bash\n",
    "environ": f"HOME=/root\0TOKEN={SECRET}\0PATH=/bin\0",
}


def _outside(repo: Path, name: str, content: str) -> Path:
    """A file beside the repository, not in it."""
    target = repo.parent / "outside" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    return target


def _rules(error: pytest.ExceptionInfo[SpecError]) -> list[tuple[str, str]]:
    return [(d.rule, d.position.file if d.position else "") for d in error.value.diagnostics]


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
@pytest.mark.parametrize("content", list(LEAKY), ids=list(LEAKY))
def test_a_link_to_a_secret_outside_is_refused_without_echoing_it(
    repo: Path, shipyard: Callable[..., Result], content: str, fmt: str
) -> None:
    (repo / "platform/teams/env.yaml").symlink_to(_outside(repo, "secrets.env", LEAKY[content]))
    result = shipyard("validate", "--format", fmt, repo=repo)
    assert result.code == 1
    assert SECRET not in result.out + result.err
    assert "platform/teams/env.yaml" in result.out + result.err
    assert str(repo.parent / "outside") not in result.out + result.err  # where it points is not echoed either
    if fmt == "json":
        (diagnostic,) = json.loads(result.out)["diagnostics"]
        assert diagnostic["rule"] == "spec/symlink"
        assert (diagnostic["file"], diagnostic["line"], diagnostic["column"]) == ("platform/teams/env.yaml", 1, 1)
        assert "outside the repository" in diagnostic["message"]
        assert "replace the link with the file itself" in diagnostic["hint"]
    if fmt == "github":
        assert result.out.startswith("::error file=platform/teams/env.yaml,line=1,col=1,title=spec/symlink::")


def test_a_link_to_the_process_environment_is_refused(repo: Path, shipyard: Callable[..., Result]) -> None:
    if not Path("/proc/self/environ").exists():
        pytest.skip("no /proc here")
    (repo / "platform/teams/env.yaml").symlink_to("/proc/self/environ")
    result = shipyard("validate", repo=repo)
    assert result.code == 1
    assert "platform/teams/env.yaml:1:1" in result.out + result.err
    assert os.environ.get("PATH", "unset") not in result.out + result.err


def test_a_link_to_a_valid_team_outside_is_not_loaded(repo: Path, registry: Registry) -> None:
    (repo / "platform/teams/outsider.yaml").symlink_to(_outside(repo, "outsider.yaml", team_yaml("outsider")))
    with pytest.raises(SpecError) as error:
        load_specs(repo, registry.kinds)
    assert _rules(error) == [("spec/symlink", "platform/teams/outsider.yaml")]


def test_a_linked_folder_is_refused_at_the_folder(repo: Path, registry: Registry) -> None:
    elsewhere = repo.parent / "outside" / "teams"
    elsewhere.parent.mkdir(parents=True)
    (repo / "platform/teams").rename(elsewhere)
    write(elsewhere, {"outsider.yaml": team_yaml("outsider")})
    (repo / "platform/teams").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(SpecError) as error:
        load_specs(repo, registry.kinds)
    # one finding for the link, not one per file behind it
    assert _rules(error) == [("spec/symlink", "platform/teams")]
    assert "outside the repository" in error.value.diagnostics[0].message


def test_a_link_inside_the_repository_is_refused_too(repo: Path, registry: Registry) -> None:
    """The rule is simply "no links": a reviewer sees a link's target path in the diff, not the spec it loads."""
    write(repo, {"docs/ml-team.yaml": team_yaml("ml")})
    (repo / "platform/teams/ml.yaml").symlink_to("../../docs/ml-team.yaml")
    with pytest.raises(SpecError) as error:
        load_specs(repo, registry.kinds)
    assert _rules(error) == [("spec/symlink", "platform/teams/ml.yaml")]
    message = error.value.diagnostics[0].message
    assert message == "got a symbolic link to docs/ml-team.yaml, expected a regular file inside the repository"


def test_a_dangling_link_is_refused_not_skipped(repo: Path, registry: Registry) -> None:
    (repo / "platform/teams/gone.yaml").symlink_to(repo.parent / "nowhere.yaml")
    with pytest.raises(SpecError) as error:
        load_specs(repo, registry.kinds)
    assert _rules(error) == [("spec/symlink", "platform/teams/gone.yaml")]


def test_a_link_loop_is_refused_without_hanging(repo: Path, registry: Registry) -> None:
    (repo / "platform/teams/a.yaml").symlink_to("b.yaml")
    (repo / "platform/teams/b.yaml").symlink_to("a.yaml")
    with pytest.raises(SpecError) as error:
        load_specs(repo, registry.kinds)
    assert _rules(error) == [("spec/symlink", "platform/teams/a.yaml"), ("spec/symlink", "platform/teams/b.yaml")]


def test_a_repository_reached_through_a_link_still_loads(repo: Path, registry: Registry) -> None:
    """Links above the repository root (a symlinked checkout, /tmp on macOS) are not the spec's own."""
    alias = repo.parent / "alias"
    alias.symlink_to(repo, target_is_directory=True)
    assert {spec.name for spec in load_specs(alias, registry.kinds)} == {"fraud", "search"}


def _longest_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def test_a_deeply_nested_line_is_not_echoed_whole(repo: Path, shipyard: Callable[..., Result]) -> None:
    write(repo, {"platform/teams/deep.yaml": "a: " + "[" * 10_000 + "]" * 10_000 + "\n"})
    for fmt in ("text", "json", "github"):
        result = shipyard("validate", "--format", fmt, repo=repo)
        assert result.code == 1
        assert "platform/teams/deep.yaml" in result.out + result.err
        assert _longest_line(result.out + result.err) < 600, fmt


def _with_line(line: str) -> str:
    return team_yaml("long").replace("spec:\n", f"spec:\n{line}\n", 1)


@pytest.mark.parametrize(
    "team",
    [
        team_yaml("long", namespace="x" * 5_000),  # a long value
        _with_line("  " + "k" * 5_000 + ": 1"),  # an unknown key as long
        _with_line("  quota: {gpu: !!int " + "9" * 4_000 + "z}"),  # a bad explicit scalar
    ],
    ids=["value", "key", "scalar"],
)
def test_a_long_line_is_quoted_only_in_part(repo: Path, shipyard: Callable[..., Result], team: str) -> None:
    write(repo, {"platform/teams/long.yaml": team})
    for fmt in ("text", "json", "github"):
        result = shipyard("validate", "--format", fmt, repo=repo)
        assert result.code == 1
        assert "platform/teams/long.yaml" in result.out + result.err
        assert _longest_line(result.out + result.err) < 600, fmt


def test_the_snippet_window_keeps_the_caret_under_the_problem() -> None:
    source = "a: " + "x" * 3_000 + " bad: here" + "y" * 3_000
    column = source.index("bad") + 1
    text = format_diagnostic(Diagnostic("yaml/syntax", "got this", SourcePosition("f.yaml", 7, column), snippet=source))
    _, quoted, caret = text.splitlines()
    assert len(quoted) < MAX_SNIPPET + 20
    assert "…" in quoted
    assert "bad: here" in quoted
    assert quoted.index("bad") == caret.index("^")
    assert caret.count("^") == len("bad")
    # a short line is quoted as it is
    short = format_diagnostic(Diagnostic("yaml/syntax", "got this", SourcePosition("f.yaml", 1, 4), snippet="a: b"))
    assert short.splitlines()[1:] == ["  1 | a: b", "    |    ^"]


@pytest.mark.parametrize(
    ("link", "plane"),
    [
        ("pipelines/fraud/train/pipeline.py", "pipelines"),  # the module KFP compiles
        ("pipelines/fraud/train/helpers.py", "pipelines"),  # a module beside it, which it could import
        ("features/fraud/features.py", "features"),  # the definitions Feast reads
        ("features/fraud/more", "features"),  # a linked folder in the team's Feast repository
        ("Pulumi.dev.yaml", "infra"),  # an infra stack's config
    ],
)
def test_a_link_among_the_files_a_plane_reads_is_refused_without_reading_it(
    tmp_path: Path, shipyard: Callable[..., Result], link: str, plane: str
) -> None:
    from conftest import example_repo

    root = example_repo(tmp_path)
    secret = _outside(root, "secrets.py", f'raise SystemExit("TOKEN={SECRET}")\n{SECRET} = 1 +\n')
    path = root / link
    path.unlink(missing_ok=True)
    path.symlink_to(secret.parent if link.endswith("more") else secret)
    target = ["--target", "dev"] if plane == "infra" else ["--target", "base:HEAD"]
    result = shipyard("plan", "--plane", plane, *target, "--format", "json", repo=root)
    assert result.code == 1, result.out + result.err
    assert SECRET not in result.out + result.err
    found = [d for d in json.loads(result.out)["diagnostics"] if d["rule"] == "spec/symlink"]
    assert [d["file"] for d in found] == [link]
    assert "outside the repository" in found[0]["message"]
