"""``shipyard new-team`` and ``shipyard team upgrade``: teams from the template, and keeping them current."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from shipyard.cli.app import Session, pass_session
from shipyard.cli.output import EXIT_CHANGES, EXIT_USER

KINDS = ("tabular-classifier", "tabular-regressor")
#: What an interactive run asks, in order: GPU training before the quota, whose lower bound depends on it.
ASKED = (
    "display_name",
    "owner",
    "group",
    "domain",
    "cost_center",
    "model_kind",
    "gpu_training",
    "gpu_quota",
    "monthly_budget_usd",
)


@click.command("new-team")
@click.argument("team")
@click.option("--display-name", help="How people name the team. Default: the slug in title case.")
@click.option("--owner", help="The GitHub team that reviews the team's files (@org/team). Default: @<org>/<team>.")
@click.option("--group", help="Identity-provider group bound to the namespace's edit role. Default: <team>-ml.")
@click.option("--domain", help="Business domain, a label on the namespace. Default: the slug.")
@click.option("--cost-center", help="Cost-center code for cost allocation.  [default: CC-0000]")
@click.option("--gpu-quota", help="GPUs the team may request at once, at most the stacks' gpuCeiling.  [default: 4]")
@click.option("--budget", "monthly_budget_usd", help="Monthly budget in US dollars.  [default: 10000]")
@click.option(
    "--kind", "model_kind", type=click.Choice(KINDS), help="The starter model.  [default: tabular-classifier]"
)
@click.option(
    "--gpu-training/--no-gpu-training", default=None, help="Train on a GPU node pool.  [default: --gpu-training]"
)
@click.option("--no-input", is_flag=True, help="Ask nothing: take the flags and the defaults (CI).")
@pass_session
def new_team(session: Session, team: str, no_input: bool, gpu_training: bool | None, **flags: str | None) -> None:
    """Add a team from the team template (platform/templates/team/): its Team spec, Feast features
    with a synthetic data generator and data checks, a training pipeline, a model deployment with
    gates, its own tests, its CODEOWNERS lines and its answers file (for `shipyard team upgrade`).

    Every answer is checked before anything is written; a refused one names the answer, what was
    given and what is allowed. Interactive runs ask for what the flags leave out.

    \b
    Examples:
      shipyard new-team risk --owner @acme/risk --gpu-quota 4 --no-input
      shipyard new-team churn --kind tabular-regressor --no-gpu-training
    """
    from shipyard.core import teams
    from shipyard.engine.teams import new_team as bake_team

    root = session.root
    repo = teams.read_repository(root)
    org = next((o.split("/")[0] for o in repo.platform_owners if "/" in o), "@acme")
    answers: dict[str, Any] = {
        "team": team,
        "display_name": flags["display_name"] or team.replace("-", " ").title(),
        "owner": flags["owner"] or f"{org}/{team}",
        "group": flags["group"] or f"{team}-ml",
        "domain": flags["domain"] or team,
        "cost_center": flags["cost_center"] or "CC-0000",
        "gpu_quota": flags["gpu_quota"] or "4",
        "monthly_budget_usd": flags["monthly_budget_usd"] or "10000",
        "model_kind": flags["model_kind"] or KINDS[0],
        "gpu_training": "no" if gpu_training is False else "yes",
    }
    given = {name for name, value in flags.items() if value is not None} | (
        {"gpu_training"} if gpu_training is not None else set()
    )
    if not no_input and interactive():
        for name in ASKED:
            if name not in given:
                answers[name] = _ask(name, answers, repo)
    started = time.perf_counter()
    written = bake_team(root, answers)
    click.echo(f"Team {team} added in {time.perf_counter() - started:.1f} s: {len(written)} files, and CODEOWNERS.")
    click.echo(
        "Next:\n"
        "  shipyard validate\n"
        "  shipyard plan --target base:HEAD            # the new team, as additions in every plane\n"
        f"  pytest tests/teams/test_{teams.identifier(team)}.py  # its own tests\n"
        f"  git add -A && git commit -m 'Add team {team}'"
    )


def interactive() -> bool:
    """Whether someone is there to answer: a terminal on stdin (CI runs have none, and pass --no-input)."""
    return sys.stdin.isatty()


def _ask(name: str, answers: dict[str, Any], repo: Any) -> Any:
    from shipyard.core import teams

    labels = {
        "display_name": "Display name",
        "owner": "Owners (GitHub team, @org/team)",
        "group": "Identity-provider group",
        "domain": "Business domain",
        "cost_center": "Cost center",
        "gpu_quota": "GPU quota",
        "monthly_budget_usd": "Monthly budget (USD)",
        "model_kind": "Starter model",
        "gpu_training": "Train on a GPU (yes/no)",
    }
    kind = (
        click.Choice(KINDS) if name == "model_kind" else click.Choice(["yes", "no"]) if name == "gpu_training" else None
    )
    while True:
        value = click.prompt(labels[name], default=answers[name], type=kind)
        trial = {**answers, name: value}
        problems = [p for p in teams.check(trial, repo) if p.answer == name]
        if not problems:
            return value
        click.echo(f"  {problems[0]}", err=True)


@click.group()
def team() -> None:
    """Teams made from the team template: keep them current with it."""


@team.command()
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every team with an answers file.")
@click.option("--check", is_flag=True, help="Change nothing; exit 2 when a team is behind the template (for CI).")
@click.option("--plan/--no-plan", "show_plan", default=True, help="After upgrading, show the plan of the change.")
@pass_session
def upgrade(session: Session, names: tuple[str, ...], every: bool, check: bool, show_plan: bool) -> None:
    """Bring a team's files up to the team template at HEAD, keeping the team's own edits.

    The template is rendered with the team's recorded answers at the version it was baked from
    and at HEAD; what changed between the two is merged into the team's files with
    `git merge-file` (3-way). Overlapping edits are left as conflict markers and listed (exit 1).
    The plan of the upgraded files against HEAD follows, so the pull request carries its
    consequences in every plane.

    \b
    Examples:
      shipyard team upgrade --all --check     # exit 2 when any team is behind (CI)
      shipyard team upgrade risk              # merge the template's changes into team risk
      shipyard team upgrade risk ads --check  # exit 2 when either is behind
    """
    from shipyard.engine import teams as engine
    from shipyard.sdk.errors import UserError

    root = session.root
    if every == bool(names):
        raise UserError("name the teams, or --all", hint="shipyard team upgrade risk, or: --all --check")
    names = tuple(engine.recorded_teams(root)) if every else names
    if check:
        head_tree = engine.template_tree(root)
        behind = [r for r in (engine.check(root, n, head_tree) for n in names) if r.behind]
        for result in behind:
            click.echo(f"{result.team}: behind the template (baked from {(result.recorded or 'unknown')[:12]})")
        click.echo(f"{len(behind)} of {len(names)} team{'s' if len(names) != 1 else ''} behind the template at HEAD.")
        if behind:
            raise click.exceptions.Exit(EXIT_CHANGES)
        return
    conflicted = False
    upgraded = 0
    for team_name in names:
        result = engine.upgrade(root, team_name)
        if not result.behind:
            click.echo(f"{team_name}: up to date with the template")
            continue
        upgraded += 1
        click.echo(
            f"{team_name}: upgraded to the template at {result.head[:12]} (from {(result.recorded or '?')[:12]})"
        )
        for label, paths in (
            ("merged", result.changed),
            ("added", result.added),
            ("removed", result.removed),
            ("kept (decide by hand)", result.kept),
            ("CONFLICT", result.conflicts),
            ("recorded", [result.record]),
        ):
            for path in paths:
                click.echo(f"  {label:8} {path}")
        conflicted = conflicted or bool(result.conflicts)
    if conflicted:
        click.echo("Resolve the conflict markers (<<<<<<< team ... >>>>>>> template@...), then commit.", err=True)
    if upgraded and show_plan and not conflicted:
        _plan(session)
    if conflicted:
        raise click.exceptions.Exit(EXIT_USER)


def _plan(session: Session) -> None:
    """The plan of the working tree (the upgrade) against HEAD, in every plane."""
    from shipyard.cli.output import console
    from shipyard.core.render.text import render_text
    from shipyard.engine import planner
    from shipyard.engine.targets import parse_target

    click.echo("\nWhat the upgrade changes (shipyard plan --target base:HEAD):")
    result = planner.plan(session.registry, session.root, parse_target("base:HEAD"), "local")
    console().print(render_text(result.plan), highlight=False)
