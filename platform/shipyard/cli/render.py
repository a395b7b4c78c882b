"""``render``: an environment's Kubernetes objects as plain YAML, for Argo CD, Flux or ``kubectl apply -k``."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shipyard.cli.app import Session, pass_session
from shipyard.cli.output import EXIT_USER, blocking, read_plan, report

if TYPE_CHECKING:
    from shipyard.engine.manifests import Rendering, Written
    from shipyard.sdk.model import Resource


@click.command()
@click.option("--env", "environment", required=True, help="The environment to render (platform/environments/).")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write: new, empty, or one an earlier render made (created if missing).",
)
@click.option(
    "--facts-from",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A plan of this environment (shipyard plan -t ENV --out): render over the facts it pinned, not git alone.",
)
@click.option(
    "--plane",
    "planes",
    multiple=True,
    metavar="NAME",
    help="Only this plane's objects (repeatable), e.g. models where Pulumi creates the tenancy. Default: all.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if --out is not what render would write.")
@pass_session
def render(
    session: Session, environment: str, out: Path, plan_file: Path | None, planes: tuple[str, ...], check: bool
) -> None:
    """Write every Kubernetes object this repo declares for an environment as plain YAML.

    The objects are the plan's desired state (from git alone, as a base:<rev> plan
    computes it): each team's namespace, quota, limits, RBAC and network policies,
    and its InferenceServices. One folder per team, each with a kustomization.yaml,
    and one at the top, so `kubectl diff -k OUT`, Argo CD or Flux take it from there.
    Policies and the InferenceService CRD schema are checked first; a failure
    writes nothing (exit 1).

    What is not a Kubernetes object is not rendered: model aliases (promotion
    through the gates), training pipelines, feature definitions, cloud resources.
    Those are made true by `shipyard apply` only. Render rewrites the folder it
    made before and removes the files it no longer renders; it refuses any other
    non-empty folder.

    \b
    Examples:
      shipyard render --env dev --out deploy/dev          # commit deploy/dev; Argo CD syncs it
      kubectl diff -k deploy/dev                          # what the cluster would change
      shipyard render --env prod --out deploy/prod --check   # CI: the committed folder is current
      shipyard plan -t prod --plane models --out plan.json
      shipyard render --env prod --out deploy/prod --facts-from plan.json   # resolved model versions
    """
    from shipyard.engine import manifests

    registry = session.registry.only(planes)
    facts = None
    if plan_file is not None:
        reviewed = read_plan(plan_file)
        if reviewed.target != environment:
            raise _wrong_plan(plan_file, reviewed.target, environment)
        facts = reviewed.facts
    rendering = manifests.render(registry, session.root, environment, facts)
    report(rendering.findings, "text")
    if blocking(rendering.findings):
        click.echo(f"error: nothing rendered for {environment}: fix the findings above", err=True)
        raise click.exceptions.Exit(EXIT_USER)
    done = manifests.write(out, rendering.files, session.root, registry.kinds, check=check)
    if check:
        if done.written or done.removed:
            differ = [f"{f} ({'differs' if (out / f).exists() else 'missing'})" for f in done.written]
            differ += [f"{f} (no longer rendered)" for f in done.removed]
            click.echo(f"out of date: {out}: " + ", ".join(differ), err=True)
            click.echo(f"hint: shipyard render --env {environment} --out {out}", err=True)
            raise click.exceptions.Exit(EXIT_USER)
        click.echo(f"ok: {out} is what render writes for {environment} ({_count(len(rendering.objects), 'object')}).")
        return
    for line in summary(rendering, done, out):
        click.echo(line)


def summary(rendering: Rendering, done: Written, out: Path) -> list[str]:
    """What was written where, what it was computed from, and what no manifest can carry."""
    per_scope: dict[str, int] = defaultdict(int)
    for resource in rendering.objects:
        per_scope[resource.scope] += 1
    folders = ", ".join(f"{scope}/ ({count})" for scope, count in sorted(per_scope.items())) or "no objects"
    lines = [
        f"Rendered {_count(len(rendering.objects), 'Kubernetes object')} for {rendering.environment} into {out}: "
        f"{folders}.",
        f"  {_count(len(done.written), 'file')} written, {len(done.unchanged)} unchanged, {len(done.removed)} removed"
        + (": " + ", ".join(done.removed) if done.removed else "")
        + ".",
    ]
    if rendering.pinned:
        lines.append(f"  Over the facts the plan pinned for: {', '.join(rendering.pinned)}; the other planes from git.")
    else:
        lines.append(
            "  From git alone: live facts (the model version an alias serves, its storage URI) are not read;"
            " --facts-from plan.json renders over a plan's."
        )
    if rendering.others:
        lines.append("Not rendered, as they are not Kubernetes objects (only `shipyard apply` makes them true):")
        lines += [f"  {line}" for line in _others(rendering.others)]
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _others(resources: tuple[Resource, ...]) -> list[str]:
    kinds: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for resource in resources:
        kinds[resource.plane][resource.kind] += 1
    width = max(map(len, kinds))
    lines = []
    for plane, counts in sorted(kinds.items()):
        names = sorted(counts)
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more kinds" if len(names) > 4 else "")
        lines.append(f"{plane:<{width}}  {sum(counts.values()):>4}  {shown}")
    return lines


def _wrong_plan(path: Path, target: str, environment: str) -> Exception:
    from shipyard.sdk.errors import UserError

    return UserError(
        f"{path} is a plan for target '{target}', not for environment '{environment}'",
        hint=f"make one with: shipyard plan -t {environment} --plane models --out plan.json",
    )
