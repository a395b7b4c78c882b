"""``shipyard ci``: what a GitHub Actions workflow writes back to GitHub (the sticky plan comment, the drift issue).

The environment is read here and only here (GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL); the engine
(``shipyard.engine.github``) gets the values.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shipyard.cli.app import Session, pass_session

if TYPE_CHECKING:
    from shipyard.engine.github import GitHub

#: How the client waits and tells the time; tests replace them (a rate limit's wait, a retry's backoff).
SLEEP: Callable[[float], None] = time.sleep
CLOCK: Callable[[], float] = time.time

MARKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")

repository_option = click.option(
    "--repository",
    metavar="OWNER/NAME",
    help="The GitHub repository. Default: $GITHUB_REPOSITORY (set in every workflow run).",
)


@click.group()
def ci() -> None:
    """Write a workflow's results back to GitHub: the plan's sticky pull-request comment, an environment's
    drift issue.

    \b
    Environment:
      GITHUB_TOKEN       required: a token that may write comments and issues
      GITHUB_REPOSITORY  owner/name (or --repository)
      GITHUB_API_URL     default https://api.github.com (GitHub Enterprise: https://HOST/api/v3)
    """


@ci.command()
@click.option("--pr", "pr", type=click.IntRange(min=1), required=True, help="The pull request's number.")
@click.option(
    "--marker",
    required=True,
    metavar="NAME",
    help="Names the comment: its first line is <!-- NAME -->, found and updated on every push.",
)
@click.option(
    "--body-file",
    "files",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Markdown for the comment (repeatable): the files are joined by a blank line, in order.",
)
@click.option(
    "--commit",
    metavar="SHA",
    help="The commit named in the comment's last line. Default: the repository's HEAD; '' leaves the line out.",
)
@repository_option
@pass_session
def comment(
    session: Session, pr: int, marker: str, files: tuple[Path, ...], commit: str | None, repository: str | None
) -> None:
    """Create or update the one comment of a pull request whose first line is <!-- NAME -->. Two such
    comments are an error and nothing changes; a body over GitHub's 65,536 characters is refused.

    \b
    Examples:
      shipyard ci comment --pr 7 --marker shipyard-plan --body-file plan.md --body-file owners.md
    """
    from shipyard.engine.github import marker_line, upsert_comment
    from shipyard.engine.revisions import head_commit
    from shipyard.sdk.errors import UserError

    if "--" in marker or not MARKER_NAME.fullmatch(marker):
        raise UserError(
            f"--marker '{marker}' cannot be an HTML comment's name",
            hint="letters, digits and _ . : / -, without '--': e.g. shipyard-plan",
        )
    line = marker_line(marker)
    pieces = [_read(path).rstrip("\n") for path in files]
    sha = head_commit(session.root) if commit is None else commit.strip()
    if sha:
        pieces.append(f"<sub>commit `{sha}`</sub>")
    body = line + "\n" + "\n\n".join(pieces) + "\n"
    done = upsert_comment(_client(repository), pr, line, body)
    verb = {"created": "created", "updated": "updated", "unchanged": "left unchanged (same body)"}[done.action]
    click.echo(f"comment {done.number} on pull request #{pr} {verb}: {done.url}")


@ci.command("drift-issue")
@click.option("--target", "-t", required=True, metavar="ENV", help="The environment `shipyard drift` checked.")
@click.option(
    "--report",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="`shipyard drift -t ENV --format markdown`'s output (needed for status 2).",
)
@click.option(
    "--status",
    type=int,
    required=True,
    metavar="CODE",
    help="`shipyard drift`'s exit code: 2 opens or updates the issue, 0 closes it, anything else is an error.",
)
@click.option("--label", default="drift", show_default=True, help="The label of a new issue ('' for none).")
@repository_option
def drift_issue(target: str, report: Path | None, status: int, label: str, repository: str | None) -> None:
    """Keep one open issue per environment in step with drift: found by <!-- shipyard-drift:ENV --> on the
    first line of its body; status 2 creates it or updates its body, status 0 closes it with a comment saying
    when it was found clean (nothing to do when none is open), anything else changes nothing and fails.

    \b
    Examples:
      shipyard drift -t prod --format markdown > drift.md; echo $? > status
      shipyard ci drift-issue -t prod --report drift.md --status "$(cat status)"
    """
    from datetime import UTC, datetime

    from shipyard.engine.github import DRIFT
    from shipyard.engine.github import drift_issue as sync
    from shipyard.sdk.errors import UserError

    text = ""
    if report is not None:
        text = _read(report)
    elif status == DRIFT:
        raise UserError(
            "--status 2 (drift) needs --report", hint=f"shipyard drift -t {target} --format markdown > drift.md"
        )
    done = sync(_client(repository), target, status, text, datetime.fromtimestamp(CLOCK(), UTC), label=label)
    if done.action == "nothing":
        click.echo(f"no drift on {target}, and no open drift issue: nothing to do")
    else:
        click.echo(f"drift issue #{done.number} of {target} {done.action}: {done.url}")


def _client(repository: str | None) -> GitHub:
    from shipyard.engine.github import GitHub
    from shipyard.sdk.errors import UserError

    token = os.environ.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise UserError(
            "GITHUB_TOKEN is not set",
            hint="in a workflow: env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}; locally: a token that may write "
            "issues and pull requests",
        )
    repository = repository or os.environ.get("GITHUB_REPOSITORY", "").strip()
    if not repository:
        raise UserError("no repository: GITHUB_REPOSITORY is not set", hint="pass --repository owner/name")
    api_url = os.environ.get("GITHUB_API_URL", "").strip() or "https://api.github.com"
    if not api_url.startswith(("https://", "http://")):
        raise UserError(f"GITHUB_API_URL '{api_url}' is not an http(s) URL", hint="e.g. https://api.github.com")
    return GitHub(token, repository, api_url, sleep=SLEEP, clock=CLOCK)


def _read(path: Path) -> str:
    from shipyard.sdk.errors import UserError

    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot be read ({error})", hint="pass a UTF-8 text file") from None
