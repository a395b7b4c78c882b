"""Verbs that plan and apply: ``plan`` (what would change) and ``apply`` (make it so, exactly)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shipyard.cli.app import Session, pass_session, remember_format
from shipyard.cli.output import (
    EXIT_CHANGES,
    EXIT_USER,
    blocking,
    change_line,
    console,
    read_plan,
    report,
    within_repo,
)

if TYPE_CHECKING:
    from shipyard.engine.apply import ApplyReport, Stage


@click.command()
@click.option("--target", "-t", default="local", show_default=True, help="local, base:<rev> or an environment.")
@click.option(
    "--env",
    default="local",
    show_default=True,
    help="Environment whose desired state a base:<rev> plan compares (ignored for other targets).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json", "github"]),
    default="text",
    help="text for terminals, markdown for a PR comment, json for machines, github for annotations.",
    callback=remember_format,
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the plan as JSON here, for apply --plan (unchanged resources counted per plane and scope; "
    "see --full).",
)
@click.option(
    "--full",
    is_flag=True,
    help="In the JSON (--out, --format json), list every change with its bodies, unchanged ones too.",
)
@click.option(
    "--max-chars",
    type=click.IntRange(min=2000),
    help="markdown: keep the comment under this many characters (default: what GitHub allows, less room "
    "for the owners table), e.g. a third of it for each of three environments sharing one comment.",
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes (0 when none).")
@click.option("--show-unchanged", is_flag=True, help="List unchanged resources too (text format).")
@click.option(
    "--plane",
    "planes",
    multiple=True,
    metavar="NAME",
    help="Only this plane (repeatable): e.g. the planes whose cloud adapters an environment has. Default: all.",
)
@pass_session
def plan(
    session: Session,
    target: str,
    env: str,
    fmt: str,
    out: Path | None,
    full: bool,
    max_chars: int | None,
    detailed_exitcode: bool,
    show_unchanged: bool,
    planes: tuple[str, ...],
) -> None:
    """Show what applying this repo to a target would change, field by field.

    \b
    Examples:
      shipyard plan                                  # against the local platform
      shipyard plan -t base:origin/main -f markdown  # what a pull request changes
      shipyard plan -t dev --out plan.json           # review, then: shipyard apply --plan plan.json
      shipyard plan -t dev --out plan.json --full    # with the bodies of unchanged resources too
      shipyard plan -t dev --plane pipelines         # one plane of an environment
    """
    from shipyard.core.render.common import reuse_line
    from shipyard.engine import planner
    from shipyard.engine.evaluation import reuse
    from shipyard.engine.targets import parse_target

    result = planner.plan(session.registry.only(planes), session.root, parse_target(target), env)
    findings = within_repo(result.findings, session.root)
    reused = reuse(result.evaluations)
    if out is not None:
        from shipyard.core.render.jsonout import render_json

        out.write_text(render_json(result.plan, findings, full=full, reuse=reused))
    if fmt == "text":
        report(findings, "text")
        from shipyard.core.render.text import render_text

        console().print(render_text(result.plan, show_unchanged=show_unchanged), highlight=False)
        if line := reuse_line(reused):
            click.echo(line, err=True)
    elif fmt == "markdown":
        from shipyard.core.render.markdown import render_markdown

        artifact = out.name if out else "plan.json"
        limit = {} if max_chars is None else {"limit": max_chars}
        comment = render_markdown(result.plan, findings, artifact=artifact, footer=reuse_line(reused), **limit)
        click.echo(comment, nl=False)
    elif fmt == "json":
        from shipyard.core.render.jsonout import render_json

        click.echo(render_json(result.plan, findings, full=full, reuse=reused), nl=False)
    else:
        from shipyard.core.render.github import render_github

        click.echo(render_github(result.plan, findings), nl=False)
    if blocking(findings):
        raise click.exceptions.Exit(EXIT_USER)
    if detailed_exitcode and result.plan.has_changes:
        raise click.exceptions.Exit(EXIT_CHANGES)


@click.command()
@click.option("--target", "-t", default="local", show_default=True, help="local or an environment.")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A reviewed plan from `shipyard plan --out`; refused if it is stale.",
)
@click.option("--yes", "-y", is_flag=True, help="Apply a fresh, unreviewed plan to a non-local target.")
@click.option(
    "--plane",
    "planes",
    multiple=True,
    metavar="NAME",
    help="Only this plane (repeatable; as the reviewed plan was made). Default: all.",
)
@pass_session
def apply(session: Session, target: str, plan_file: Path | None, yes: bool, planes: tuple[str, ...]) -> None:
    """Make the target match the repo, executing exactly one plan.

    Holds the target's lock, journals every change (a crashed apply resumes
    where it stopped), retries transient errors, verifies the result and records
    what was applied (what `shipyard drift` compares with). Each change is executed
    as planned. A reviewed plan is refused if it was made from another commit than
    HEAD, for another target, or if the target or the repo moved since it was made.
    Cloud targets need a reviewed --plan or --yes, and keep their lock, journal and
    record in the state bucket their Environment spec names (spec.state.bucket).

    \b
    On the local target, where stage 1 moved what a plane planned from (training
    registered a new model version), the engine plans that plane again and applies
    it as stage 2, shown as such ("stage 2: models ...").
    """
    from shipyard.engine.apply import apply as run_apply
    from shipyard.engine.targets import parse_target
    from shipyard.sdk.errors import UserError

    ref = parse_target(target)
    reviewed = read_plan(plan_file) if plan_file else None
    if reviewed is None and ref.kind == "environment" and not yes:
        raise UserError(
            f"refusing to apply an unreviewed plan to '{ref.name}'",
            hint=f"shipyard plan -t {ref.name} --out plan.json; review; shipyard apply -t {ref.name} --plan plan.json",
        )
    done = run_apply(
        session.registry.only(planes),
        session.root,
        ref,
        reviewed=reviewed,
        environ=os.environ,
        on_start=lambda run: click.echo(f"Applying to {ref.name} as {run.describe()}"),
        on_change=lambda change: click.echo(change_line(change)),
        on_stage=lambda stage: click.echo(stage_line(stage)),
    )
    click.echo(applied_line(done, ref.name))


def stage_line(stage: Stage) -> str:
    """The header of a stage 2: which planes were planned again, and why."""
    planes = ", ".join(stage.planes)
    return f"stage {stage.number}: {planes} planned again on what stage 1 changed ({len(stage.plan.pending)} changes)"


def applied_line(done: ApplyReport, target: str) -> str:
    resumed = f", {len(done.resumed)} already done before" if done.resumed else ""
    stages = f" in {len(done.stages)} stages" if len(done.stages) > 1 else ""
    return f"Applied {len(done.applied)} changes to {target}{stages}{resumed} (plan {done.plan.hash[:12]})."
