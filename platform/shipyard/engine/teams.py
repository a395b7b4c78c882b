"""Teams from the template: bake a new one (``shipyard new-team``) and upgrade one (``shipyard team upgrade``).

The template (``platform/templates/team/``) is a cookiecutter template whose hooks place the
team's files in the repository's top-level folders and record, next to the Team spec, the
template version (commit and tree) and the answers it was baked from.

An upgrade renders the template twice with the team's answers, at the recorded commit and at
HEAD, and merges the difference into the team's files with ``git merge-file`` (a 3-way merge:
the team's edits stay, overlapping edits become conflict markers). cruft does the same for a
project that is one folder; a team here is spread over five, which cruft cannot track.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.core import teams
from shipyard.sdk.errors import UserError

STAGING = ".new-team-{team}"


class AnswersError(UserError):
    """Answers the rules refuse; nothing was written."""

    def __init__(self, problems: list[teams.Problem]) -> None:
        lines = "\n  ".join(str(p) for p in problems)
        super().__init__(
            f"{len(problems)} answer{'s' if len(problems) > 1 else ''} refused, nothing was written:\n  {lines}",
            hint="fix the answers and run it again (shipyard new-team --help lists them)",
        )
        self.problems = problems


def new_team(root: Path, answers: Mapping[str, Any]) -> list[str]:
    """Bake the template into ``root`` with ``answers``; the files written, relative to ``root``.

    Every answer is checked first: a refused one writes nothing. The hooks copy the files in
    and remove them again if anything fails on the way (Ctrl-C included).
    """
    problems = teams.check(answers, teams.read_repository(root))
    if problems:
        raise AnswersError(problems)
    before = _files(root, answers["team"])
    with tempfile.TemporaryDirectory(prefix="shipyard-new-team-") as scratch:
        bake(root / teams.TEMPLATE, Path(scratch), answers, target=root)
    return sorted(_files(root, answers["team"]) - before)


def _files(root: Path, team: str) -> set[str]:
    paths = [*(root / top / team for top in ("features", "pipelines", "models")), root / "platform" / "teams"]
    found = {str(p.relative_to(root)) for folder in paths if folder.is_dir() for p in folder.rglob("*") if p.is_file()}
    tests = root / "tests" / "teams" / f"test_{teams.identifier(team)}.py"
    return found | ({str(tests.relative_to(root))} if tests.is_file() else set())


def bake(template: Path, output: Path, answers: Mapping[str, Any], *, target: Path, render_only: bool = False) -> Path:
    """Run cookiecutter on ``template`` into ``output``; the staging folder it rendered.

    With ``render_only`` the hooks check the answers as an upgrade's and leave the rendered
    files in the staging folder; otherwise they move them into ``target``.
    """
    from cookiecutter.exceptions import CookiecutterException, FailedHookException
    from cookiecutter.main import cookiecutter

    logging.getLogger("cookiecutter").setLevel(logging.CRITICAL)  # its progress lines are not ours to show
    context = {
        **{k: str(v) for k, v in answers.items()},
        "_target": str(target),
        "_render_only": "1" if render_only else "",
    }
    with _private_tempdir(output):
        try:
            cookiecutter(str(template), no_input=True, extra_context=context, output_dir=str(output))
        except FailedHookException as error:
            raise UserError(
                f"the team template's hook refused the answers ({error}); nothing was written",
                hint="its 'error:' lines above say which answer and why",
            ) from error
        except CookiecutterException as error:
            raise UserError(f"the team template did not render: {error}", hint=f"check {template}") from error
    return output / STAGING.format(team=answers["team"])


@contextmanager
def _private_tempdir(folder: Path) -> Iterator[None]:
    # Cookiecutter writes each hook, with the answers in it, to a temporary file it does not always
    # remove: keep those files in our own scratch folder rather than in the shared /tmp.
    saved = tempfile.tempdir
    scratch = folder / ".hooks"
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
    tempfile.tempdir = str(scratch)
    try:
        yield
    finally:
        tempfile.tempdir = saved


# -- upgrades ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """A team's answers file: the template version it was baked from, and its answers."""

    team: str
    commit: str | None
    tree: str | None
    answers: dict[str, Any]


@dataclass
class Upgrade:
    team: str
    recorded: str | None  # the template commit the team was baked from (or last upgraded to)
    head: str  # HEAD's commit
    behind: bool
    changed: list[str] = field(default_factory=list)  # files the upgrade wrote (merged cleanly)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # files left with conflict markers
    kept: list[str] = field(default_factory=list)  # files the template changed but the team removed, or vice versa
    record: str = ""  # the answers file, where the new template version was recorded


def record(root: Path, team: str) -> Record:
    file = root / teams.ANSWERS_FILE.format(team=team)
    if not file.is_file():
        raise UserError(
            f"{file.relative_to(root)}: no answers file, so team '{team}' has no template version to upgrade from",
            hint="a team made by shipyard new-team has one; for an older team, write it by hand (see README)",
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        template, answers = data["template"], data["answers"]
        return Record(team, template.get("commit"), template.get("tree"), dict(answers))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(
            f"{file.relative_to(root)}: not an answers file ({type(error).__name__}: {error})",
            hint='expected {"template": {"path", "commit", "tree"}, "answers": {...}}',
        ) from error


def recorded_teams(root: Path) -> list[str]:
    """Every team with an answers file, by name."""
    suffix = ".answers.json"
    return sorted(p.name[: -len(suffix)] for p in (root / "platform" / "teams").glob(f"*{suffix}"))


def template_tree(root: Path, commit: str = "HEAD") -> str | None:
    return _git_out(root, "rev-parse", "--verify", "--quiet", f"{commit}:{teams.TEMPLATE}")


def check(root: Path, team: str, head_tree: str | None = None) -> Upgrade:
    """Whether ``team`` is behind the template at HEAD: its recorded tree against HEAD's (no rendering)."""
    found = record(root, team)
    head = _git_out(root, "rev-parse", "HEAD") or ""
    now = head_tree or template_tree(root)
    if now is None:
        raise UserError(f"HEAD has no {teams.TEMPLATE}", hint="commit the team template")
    return Upgrade(team, found.commit, head, behind=found.tree != now)


def upgrade(root: Path, team: str) -> Upgrade:
    """Merge what the template changed since the team's recorded version into its files, and record HEAD."""
    found = record(root, team)
    result = check(root, team)
    if not result.behind:
        return result
    if found.commit is None or _git_out(root, "cat-file", "-e", f"{found.commit}^{{commit}}") is None:
        raise UserError(
            f"team '{team}' was baked from template commit {found.commit or '(unknown)'}, which this clone lacks",
            hint="fetch the full history (actions/checkout with fetch-depth: 0), or set the commit it was made from",
        )
    dirty = _git_out(root, "status", "--porcelain", "--", *_team_paths(team))
    if dirty:
        raise UserError(
            f"team '{team}' has uncommitted changes:\n{dirty}",
            hint="commit them first: the merge would mix them with the template's changes",
        )
    with tempfile.TemporaryDirectory(prefix="shipyard-upgrade-") as scratch:
        base = _render_at(root, found.commit, found.answers, Path(scratch) / "base")
        theirs = _render_at(root, "HEAD", found.answers, Path(scratch) / "theirs")
        for path in sorted(set(base) | set(theirs)):
            _merge_one(root, path, base.get(path), theirs.get(path), result, found.commit, result.head)
    file = root / teams.ANSWERS_FILE.format(team=team)
    data = json.loads(file.read_text(encoding="utf-8"))
    data["template"].update(commit=result.head, tree=template_tree(root))
    file.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    result.record = str(file.relative_to(root))
    return result


def _team_paths(team: str) -> list[str]:
    return [
        f"features/{team}",
        f"pipelines/{team}",
        f"models/{team}",
        f"platform/teams/{team}.yaml",
        f"tests/teams/test_{teams.identifier(team)}.py",
    ]


def _render_at(root: Path, commit: str, answers: Mapping[str, Any], into: Path) -> dict[str, bytes]:
    """The team's files as the template at ``commit`` renders them with ``answers``, by repository path."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, teams.TEMPLATE], cwd=root, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise UserError(f"cannot read {teams.TEMPLATE} at {commit}: {archive.stderr.decode(errors='replace').strip()}")
    source = into / "template"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(source, filter="data")
    staging = bake(source / teams.TEMPLATE, into, answers, target=root, render_only=True)
    return {
        str(p.relative_to(staging)): p.read_bytes()
        for p in staging.rglob("*")
        if p.is_file() and p.name != "CODEOWNERS.fragment"
    }


def _merge_one(
    root: Path, path: str, base: bytes | None, theirs: bytes | None, result: Upgrade, old: str, new: str
) -> None:
    """One file's 3-way merge: the team's copy (ours), the old rendering (base), the new one (theirs)."""
    if base == theirs:
        return  # the template did not change this file for this team
    target = root / path
    ours = target.read_bytes() if target.is_file() else None
    if theirs is None:  # the template no longer has it
        if ours == base:
            target.unlink()
            result.removed.append(path)
        elif ours is not None:
            result.kept.append(path)  # the team edited a file the template dropped: theirs to decide
        return
    if ours is None:
        if base is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(theirs)
            result.added.append(path)
        else:
            result.kept.append(path)  # the team removed a file the template changed
        return
    merged, conflicts = _merge_file(
        ours, base or b"", theirs, labels=("team", f"template@{old[:7]}", f"template@{new[:7]}")
    )
    if merged != ours:
        target.write_bytes(merged)
        result.changed.append(path)
    if conflicts:
        result.conflicts.append(path)


def _merge_file(ours: bytes, base: bytes, theirs: bytes, labels: tuple[str, str, str]) -> tuple[bytes, int]:
    with tempfile.TemporaryDirectory(prefix="shipyard-merge-") as scratch:
        files = []
        for name, content in zip(("ours", "base", "theirs"), (ours, base, theirs), strict=True):
            (Path(scratch) / name).write_bytes(content)
            files.append(str(Path(scratch) / name))
        label_args = [arg for label in labels for arg in ("-L", label)]
        done = subprocess.run(
            ["git", "merge-file", "-p", "--diff3", *label_args, *files], capture_output=True, check=False
        )
    if done.returncode < 0 or done.returncode > 127:  # 255: merge-file's own error
        raise UserError(f"git merge-file failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout, done.returncode


def _git_out(root: Path, *args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None
