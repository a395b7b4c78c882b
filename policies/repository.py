"""Rules on the repository's own files: who owns what (``CODEOWNERS``) and how CI runs (``.github/workflows``).

Each rule reads files under ``ctx.root`` (and nothing when there is none), refuses links unread
(``shipyard.sdk.files.linked``) and reads YAML with the project's reader, so every finding has its
``file:line:col``. Ownership follows GitHub's rule: the last ``CODEOWNERS`` line whose pattern matches
a path owns it; a folder is owned when a file directly inside it is. A team folder's owners come from a line
that names it: a catch-all (``*``, ``/pipelines/``) that would also own the next team's folder does not count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shipyard.core.owners import LOCATIONS, Line, Owners, parse_codeowners
from shipyard.core.yamlsource import YamlDocument, clip, read_yaml
from shipyard.sdk import Diagnostic, PolicyContext, rule
from shipyard.sdk.files import linked
from shipyard.sdk.model import FieldPath, SourcePosition

#: Where GitHub looks for the file, in its order: the first one found is the one in force.
CODEOWNERS = LOCATIONS
#: Folders that hold one subfolder per team.
TEAM_FOLDERS = ("features", "pipelines", "models")
TEAM_SPECS = "platform/teams"
#: Files each team owns outside its folders: its Team spec and answers file, its own tests.
TEAM_FILES = ((TEAM_SPECS, "*.y*ml"), (TEAM_SPECS, "*.answers.json"), ("tests/teams", "test_*.py"))
#: The platform's own paths: their owner is the owner of ``/.github/`` (who owns CI owns the platform).
PLATFORM_ROOT = ".github"
PLATFORM_PATHS = (".github", "policies", "platform", "infra")
WORKFLOWS = ".github/workflows"
#: A probe file name: a folder is owned when a file directly inside it is.
_PROBE = "\x00probe"

SHA = re.compile(r"^[0-9a-f]{40}$")
#: ``${{ ... }}`` expressions, and the contexts in them an outsider can write (issue and pull request text,
#: branch names, commit messages, comments, review bodies).
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
UNTRUSTED = re.compile(
    r"github\s*\.\s*(head_ref"
    r"|event\s*\.\s*[\w.*\[\]'\"-]*?"
    r"\b(title|body|head_ref|ref|label|message|email|author|page_name|comment|review|commits|head_commit|pages)\b)",
    re.I,
)
#: Scopes a workflow may grant at its top level: reading.
_READ_LEVELS = frozenset({"read", "none"})


def _codeowners(root: Path) -> tuple[str, Path] | None:
    for name in CODEOWNERS:
        path = root / name
        if path.is_file() or path.is_symlink():
            return name, path
    return None


def _owners(lines: Owners, folder: str) -> Line | None:
    """The line that owns ``folder`` (its last match, GitHub's rule), None when none matches."""
    return lines.last(f"{folder}/{_PROBE}")


def _finding(
    file: str, line: int, column: int, *, got: str, expected: str, snippet: str | None, key: str = ""
) -> Diagnostic:
    found = Diagnostic.mismatch(
        "policy",
        got=got,
        expected=expected,
        position=SourcePosition(file, line, column),
        key_path=key,
        snippet=snippet,
    )
    return replace(found, subject=file)


def _team_folders(root: Path) -> list[str]:
    folders = []
    for parent in TEAM_FOLDERS:
        base = root / parent
        if base.is_dir() and not base.is_symlink():
            folders += [
                f"{parent}/{p.name}" for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith((".", "_"))
            ]
    for parent, pattern in TEAM_FILES:
        base = root / parent
        if base.is_dir() and not base.is_symlink():
            folders += [f"{parent}/{p.name}" for p in sorted(base.glob(pattern)) if p.is_file()]
    return folders


def _read_codeowners(root: Path) -> tuple[str, Owners] | Diagnostic:
    found = _codeowners(root)
    if found is None:
        return _finding(
            CODEOWNERS[0],
            1,
            1,
            got="no CODEOWNERS file",
            expected="a .github/CODEOWNERS naming an owner for every team folder and platform path",
            snippet=None,
        )
    name, path = found
    link = linked(root, path)
    if link is not None:
        return replace(link, subject=name)
    return name, parse_codeowners(path.read_text(encoding="utf-8", errors="replace"))


@rule(
    "SY-REPO-001",
    "Every team folder and team file (Team spec, answers file, the team's tests) has an owner in CODEOWNERS.",
    target="repository",
    references=("scorecard:Branch-Protection", "scorecard:Code-Review"),
    hint="add a line to .github/CODEOWNERS, e.g. '/pipelines/<team>/ @<org>/<team>': its owners review the team",
)
def team_folders_have_owners(ctx: PolicyContext) -> Iterator[Diagnostic]:
    if ctx.root is None:
        return
    read = _read_codeowners(ctx.root)
    if isinstance(read, Diagnostic):
        yield read
        return
    name, lines = read
    last = lines.lines[-1].number if lines.lines else 1
    for folder in _team_folders(ctx.root):
        parent, _, own = folder.rpartition("/")
        if (ctx.root / folder).is_file():  # a team file: owned when a line matches it
            probe, sibling = folder, f"{parent}/{_PROBE}{own}"
        else:
            probe, sibling = f"{folder}/{_PROBE}", f"{parent}/{_PROBE}{own}/{_PROBE}"
        owner = lines.last(probe)
        if owner is not None and owner.owners and not owner.matches(sibling):
            continue
        if owner is None:
            got = f"no line for {folder}"
        elif not owner.owners:
            got = f"no owner for {folder} (its last matching line names none)"
        else:
            got = f"{folder} owned only by a catch-all line ({' '.join(owner.owners)})"
        yield _finding(
            name,
            owner.number if owner is not None else last,
            1,
            got=got,
            expected=f"a line naming {folder} and its owners (a @handle, @org/team or e-mail)",
            snippet=owner.text if owner is not None else None,
            key=folder,
        )


@rule(
    "SY-REPO-002",
    "The platform's paths (.github/, policies/, platform/, infra/) belong to the platform team.",
    target="repository",
    references=("scorecard:Branch-Protection",),
    hint="give /.github/, /policies/, /platform/ and /infra/ the same owners in CODEOWNERS: the platform team's",
)
def platform_paths_have_platform_owner(ctx: PolicyContext) -> Iterator[Diagnostic]:
    if ctx.root is None:
        return
    read = _read_codeowners(ctx.root)
    if isinstance(read, Diagnostic):
        yield read
        return
    name, lines = read
    platform = _owners(lines, PLATFORM_ROOT)
    if platform is None or not platform.owners:
        yield _finding(
            name,
            platform.number if platform else 1,
            1,
            got=f"no owner for {PLATFORM_ROOT}/",
            expected="the platform team as owner of /.github/ (its owners are the platform team)",
            snippet=platform.text if platform else None,
            key=f"{PLATFORM_ROOT}/",
        )
        return
    team = sorted(platform.owners)
    for path in PLATFORM_PATHS[1:]:
        owner = _owners(lines, path)
        if owner is None or sorted(owner.owners) != team:
            yield _finding(
                name,
                owner.number if owner else 1,
                1,
                got=f"{path}/ owned by {' '.join(owner.owners) if owner and owner.owners else 'nobody'}",
                expected=f"the platform team, {' '.join(team)} (the owners of /{PLATFORM_ROOT}/)",
                snippet=owner.text if owner else None,
                key=f"{path}/",
            )


# --- workflows -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workflow:
    display: str
    doc: YamlDocument

    @property
    def data(self) -> dict[str, Any]:
        return self.doc.data if isinstance(self.doc.data, dict) else {}

    def finding(self, path: FieldPath, *, got: str, expected: str, at_key: bool = False) -> Diagnostic:
        position = self.doc.position(path, at_key=at_key)
        return _finding(
            self.display,
            position.line,
            position.column,
            got=got,
            expected=expected,
            snippet=self.doc.snippet(position),
            key=".".join(str(p) for p in path),
        )

    def steps(self) -> Iterator[tuple[FieldPath, dict[str, Any]]]:
        jobs = self.data.get("jobs")
        if not isinstance(jobs, dict):
            return
        for job_name, job in jobs.items():
            if not isinstance(job, dict) or not isinstance(job.get("steps"), list):
                continue
            for index, step in enumerate(job["steps"]):
                if isinstance(step, dict):
                    yield ("jobs", job_name, "steps", index), step

    def uses(self) -> Iterator[tuple[FieldPath, str]]:
        jobs = self.data.get("jobs")
        if isinstance(jobs, dict):
            for job_name, job in jobs.items():
                if isinstance(job, dict) and isinstance(job.get("uses"), str):  # a reusable workflow
                    yield ("jobs", job_name, "uses"), job["uses"]
        for path, step in self.steps():
            if isinstance(step.get("uses"), str):
                yield (*path, "uses"), step["uses"]

    def triggers(self) -> dict[str, FieldPath]:
        on = self.data.get("on")
        if isinstance(on, str):
            return {on: ("on",)}
        if isinstance(on, list):
            return {str(t): ("on", i) for i, t in enumerate(on)}
        if isinstance(on, dict):
            return {str(t): ("on", t) for t in on}
        return {}


def _workflows(root: Path) -> tuple[list[Workflow], list[Diagnostic]]:
    """Every workflow document, and why a workflow could not be read (a link, bad YAML)."""
    folder = root / WORKFLOWS
    link = linked(root, folder) if folder.exists() or folder.is_symlink() else None
    if link is not None:
        return [], [link]
    if not folder.is_dir():
        return [], []
    found: list[Workflow] = []
    problems: list[Diagnostic] = []
    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        display = path.relative_to(root).as_posix()
        link = linked(root, path)
        if link is not None:
            problems.append(replace(link, subject=display))
            continue
        docs, errors = read_yaml(path, display)
        problems += [replace(e, subject=display) for e in errors]
        found += [Workflow(display, doc) for doc in docs]
    return found, problems


@rule(
    "SY-GHA-001",
    "Workflows pin every action to a full commit SHA.",
    target="repository",
    references=("scorecard:Pinned-Dependencies", "zizmor:unpinned-uses"),
    hint="write 'uses: owner/repo@<40-hex commit> # vX.Y.Z': a tag can be moved to other code after review",
)
def actions_pinned_to_commits(ctx: PolicyContext) -> Iterator[Diagnostic]:
    if ctx.root is None:
        return
    workflows, problems = _workflows(ctx.root)
    yield from problems  # an unreadable workflow is checked by no rule: it stops here
    for workflow in workflows:
        for path, uses in workflow.uses():
            if uses.startswith("./"):
                continue  # an action of this repository, reviewed with it
            if uses.startswith("docker://"):
                if re.search(r"@sha256:[0-9a-f]{64}$", uses):
                    continue
                expected = "an image pinned by digest (docker://image@sha256:<64 hex>)"
            else:
                _, _, ref = uses.partition("@")
                if SHA.match(ref):
                    continue
                expected = "owner/repo@<full 40-hex commit SHA>"
            yield workflow.finding(path, got=f"'{clip(uses)}'", expected=expected)


@rule(
    "SY-GHA-002",
    "Workflows set least-privilege top-level permissions: no write-all, no write scope at the top.",
    target="repository",
    references=("checkov:CKV2_GHA_1", "scorecard:Token-Permissions", "zizmor:excessive-permissions"),
    hint="set 'permissions: {contents: read}' at the top and grant a write scope only to the job that needs it",
)
def least_privilege_permissions(ctx: PolicyContext) -> Iterator[Diagnostic]:
    if ctx.root is None:
        return
    workflows, _ = _workflows(ctx.root)
    for workflow in workflows:
        if "permissions" not in workflow.data:
            yield workflow.finding(
                (), got="no top-level permissions (the token gets the repository's default)", expected="permissions"
            )
            continue
        permissions = workflow.data["permissions"]
        if isinstance(permissions, str):
            if permissions not in ("read-all", "{}"):
                yield workflow.finding(
                    ("permissions",), got=f"permissions: {clip(permissions)}", expected="read-all or per-scope reads"
                )
        elif isinstance(permissions, dict):
            for scope, level in permissions.items():
                if str(level) not in _READ_LEVELS:
                    yield workflow.finding(
                        ("permissions", scope),
                        got=f"{scope}: {level} for every job",
                        expected="read or none at the top level (write on the job that needs it)",
                    )
        elif permissions is not None:
            yield workflow.finding(
                ("permissions",), got=f"permissions: {permissions!r}", expected="a mapping of scopes"
            )
        jobs = workflow.data.get("jobs")
        for job_name, job in jobs.items() if isinstance(jobs, dict) else ():
            if isinstance(job, dict) and job.get("permissions") == "write-all":
                yield workflow.finding(
                    ("jobs", job_name, "permissions"), got="permissions: write-all", expected="the scopes the job needs"
                )


@rule(
    "SY-GHA-003",
    "Workflows never run on pull_request_target.",
    target="repository",
    references=("zizmor:dangerous-triggers", "scorecard:Dangerous-Workflow"),
    hint="use 'pull_request': pull_request_target runs with the base repository's token and secrets for a fork",
)
def no_pull_request_target(ctx: PolicyContext) -> Iterator[Diagnostic]:
    if ctx.root is None:
        return
    workflows, _ = _workflows(ctx.root)
    for workflow in workflows:
        triggers = workflow.triggers()
        if "pull_request_target" in triggers:
            yield workflow.finding(
                triggers["pull_request_target"],
                got="on: pull_request_target",
                expected="pull_request (no secrets, read-only token for forks)",
                at_key=True,
            )


@rule(
    "SY-GHA-004",
    "Every actions/checkout step sets persist-credentials: false.",
    target="repository",
    references=("zizmor:artipacked",),
    hint="add 'with: {persist-credentials: false}': otherwise the token stays in .git/config for every later step",
)
def checkout_does_not_persist_credentials(ctx: PolicyContext) -> Iterator[Diagnostic]:
    if ctx.root is None:
        return
    workflows, _ = _workflows(ctx.root)
    for workflow in workflows:
        for path, step in workflow.steps():
            uses = step.get("uses")
            if not isinstance(uses, str) or uses.partition("@")[0].lower() != "actions/checkout":
                continue
            options = step.get("with")
            value = options.get("persist-credentials") if isinstance(options, dict) else None
            if value is not False and str(value).lower() != "false":
                where = (*path, "with", "persist-credentials") if value is not None else (*path, "uses")
                yield workflow.finding(
                    where,
                    got="persist-credentials: true (the default)"
                    if value is None
                    else f"persist-credentials: {str(value).lower()}",
                    expected="persist-credentials: false",
                )


@rule(
    "SY-GHA-005",
    "run: scripts never interpolate text an outsider writes (${{ github.event.* }} titles, bodies, branch names).",
    target="repository",
    references=("checkov:CKV_GHA_2", "zizmor:template-injection", "scorecard:Dangerous-Workflow"),
    hint="pass it through env ('env: {TITLE: ${{ github.event.pull_request.title }}}') then \"$TITLE\" in the script",
)
def no_untrusted_interpolation(ctx: PolicyContext) -> Iterator[Diagnostic]:
    if ctx.root is None:
        return
    workflows, _ = _workflows(ctx.root)
    for workflow in workflows:
        for path, step in workflow.steps():
            script = step.get("run")
            if not isinstance(script, str):
                continue
            for expression in EXPRESSION.findall(script):
                if UNTRUSTED.search(expression):
                    yield workflow.finding(
                        (*path, "run"),
                        got=f"'${{{{{clip(expression.strip())}}}}}' expanded into the script",
                        expected="untrusted text passed through an environment variable",
                    )
