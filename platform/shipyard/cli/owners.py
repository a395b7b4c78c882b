"""``shipyard owners``: whose review a change needs, from CODEOWNERS."""

from __future__ import annotations

import click

from shipyard.cli.app import Session, pass_session, remember_format


@click.command()
@click.option("--changed", "base", metavar="REV", help="The files that differ from REV (a pull request's base).")
@click.argument("paths", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    help="text for terminals, markdown for the PR comment, json for machines.",
    callback=remember_format,
)
@pass_session
def owners(session: Session, base: str | None, paths: tuple[str, ...], fmt: str) -> None:
    """List whose review a change needs: for each CODEOWNERS line that owns changed files, its owners and
    those files (GitHub's rule: the last matching line wins); files no line owns are listed last.

    \b
    Examples:
      shipyard owners --changed origin/main          # a pull request's reviewers
      shipyard owners platform/teams/fraud.yaml      # who owns these paths
    """
    from shipyard.core.owners import LOCATIONS, parse_codeowners, reviews
    from shipyard.core.render.owners import render_owners_json, render_owners_markdown, render_owners_text
    from shipyard.engine.revisions import changed_files
    from shipyard.sdk.errors import UserError
    from shipyard.sdk.files import linked

    if base is None and not paths:
        raise UserError("name the paths, or the base of a change", hint="shipyard owners --changed origin/main")
    root = session.root
    file = next((name for name in LOCATIONS if (root / name).is_file() or (root / name).is_symlink()), None)
    if file is None:
        raise UserError(
            f"no CODEOWNERS file (looked for {', '.join(LOCATIONS)})",
            hint="add .github/CODEOWNERS: each team's paths with its owners, the platform's with the platform team",
        )
    link = linked(root, root / file)
    if link is not None:
        raise UserError(f"{file}: {link.message}", hint=link.hint)
    table = parse_codeowners((root / file).read_text(encoding="utf-8", errors="replace"))
    wanted = sorted({*paths, *(changed_files(root, base) if base is not None else ())})
    found = reviews(table, wanted)
    render = {"text": render_owners_text, "markdown": render_owners_markdown, "json": render_owners_json}[fmt]
    click.echo(render(file, found), nl=False)
