"""The models plane's CLI verbs: ``shipyard promote`` and ``shipyard rollback`` (local target only)."""

from __future__ import annotations

import click

from shipyard.planes.models.promotion import promote, rollback
from shipyard.planes.models.registry import ModelRegistry
from shipyard.sdk import Spec, UserError
from shipyard.sdk.commands import Session


def _local_deployment(session: Session, ref: str, environment: str) -> tuple[Spec, ModelRegistry]:
    """The deployment and the local registry; other environments' aliases are moved by apply only."""
    from shipyard.planes.models import MODEL_DEPLOYMENT, local_registry

    ctx, target = session.context("local")
    team, _, name = ref.partition("/")
    known = ", ".join(f"{s.team}/{s.name}" for s in ctx.specs.of_kind(MODEL_DEPLOYMENT.name)) or "none"
    spec = ctx.specs.require(MODEL_DEPLOYMENT.name, name, team, hint=f"deployments: {known}")
    if environment != "local":
        raise UserError(
            f"aliases in '{environment}' move only when a merged change is applied, never by hand",
            hint=f"set spec.serve.{environment}.version in {spec.source.file}, open a pull request, "
            f"and apply it once merged",
        )
    return spec, local_registry(ctx.specs, target)


@click.command("promote")
@click.argument("deployment", metavar="TEAM/MODEL")
@click.option("--to", "alias", help="The alias to move. Default: the one the environment serves.")
@click.option("--version", "version", type=int, help="The model version. Default: the newest not rolled back.")
@click.option("--env", default="local", show_default=True, help="Environment (others move by pull request).")
@click.option("--reason", default="promoted by hand", show_default=True, help="Recorded on the version.")
@click.pass_obj
def promote_version(
    session: Session, deployment: str, alias: str | None, version: int | None, env: str, reason: str
) -> None:
    """Move a model's alias to a version, only if it passes the deployment's gates.

    Who, when, why and the previous version are recorded as tags on the version, so
    `shipyard rollback` can go back. A failing gate is named and nothing moves (exit 1).
    A version named with --version that a rollback or a failed canary rejected is a
    candidate again once promoted; --reason is recorded with the rejection it clears.
    """
    spec, registry = _local_deployment(session, deployment, env)
    alias = alias or spec.spec.serve[env].alias
    model = spec.spec.registered_model
    if version is None:
        version = next(iter(registry.versions(model, rejected=False)), None)
        if version is None:
            raise UserError(f"{model} has no versions", hint="train it first: shipyard apply")
    else:
        known = registry.versions(model)
        if version not in known:
            raise UserError(
                f"version {version} of {model} does not exist (--version)",
                hint=f"its versions: {', '.join(map(str, known))}"
                if known
                else "it has no versions yet: train it first (shipyard apply)",
            )
    rejected = registry.rejected(model, version)
    previous = promote(registry, spec, alias, version, why=reason)
    if rejected is not None:
        # Named by hand, through the gates: the earlier verdict (a noisy canary, a rollback) no longer binds it.
        registry.clear_rejection(model, version, reason)
        click.echo(f"version {version} is a candidate again (it was rejected: {rejected}); recorded: {reason}")
    left = "nothing" if previous is None else f"version {previous}"
    click.echo(f"{model}@{alias} → version {version} (was {left}). Run `shipyard apply` to serve it.")


@click.command("rollback")
@click.argument("deployment", metavar="TEAM/MODEL")
@click.option("--alias", help="The alias to move back. Default: the one the environment serves.")
@click.option("--env", default="local", show_default=True, help="Environment (others move by pull request).")
@click.option("--reason", default="rolled back by hand", show_default=True, help="Recorded on both versions.")
@click.pass_obj
def rollback_version(session: Session, deployment: str, alias: str | None, env: str, reason: str) -> None:
    """Move a model's alias back to the version it served before its last promotion.

    The version it leaves is marked rejected, so it is not promoted again automatically.
    """
    spec, registry = _local_deployment(session, deployment, env)
    alias = alias or spec.spec.serve[env].alias
    left, back = rollback(registry, spec, alias, why=reason)
    model = spec.spec.registered_model
    click.echo(f"{model}@{alias} → version {back} (version {left} rejected). Run `shipyard apply` to serve it.")
