"""The features plane's CLI verbs: ``shipyard seed`` and ``shipyard features init``."""

from __future__ import annotations

import click

from shipyard.sdk.commands import Session


@click.command()
@click.option(
    "--team", "teams", multiple=True, help="Only this team (repeatable). Default: every team with a generator."
)
@click.option(
    "--seed", "seed_value", default=7, show_default=True, help="Random seed: the same seed gives the same rows."
)
@click.option(
    "--corrupt",
    type=click.Choice(["nulls", "range"]),
    help="Damage the data (nulls or out-of-range values) to see the data checks stop it.",
)
@click.option("--force", is_flag=True, help="Write new data even where some exists.")
@click.pass_obj
def seed(session: Session, teams: tuple[str, ...], seed_value: int, corrupt: str | None, force: bool) -> None:
    """Write each team's synthetic data into the local target's offline store.

    Teams opt in with features/<team>/synthetic.py. Existing data is kept unless
    --force or --corrupt is given. Then `shipyard plan` runs the data checks on it.
    """
    from shipyard.planes.features.seed import seed as write

    for seeded in write(
        session.root, session.specs(), teams=teams, seed_value=seed_value, corrupt=corrupt, force=force
    ):
        verb = "kept existing data in" if seeded.skipped else "wrote"
        click.echo(f"{seeded.team}: {verb} {seeded.folder.relative_to(session.root)}")


@click.group()
def features() -> None:
    """Work on the teams' feature folders with Feast's own tools."""


@features.command()
@click.option("--team", "teams", multiple=True, help="Only this team (repeatable). Default: every team with features.")
@click.pass_obj
def init(session: Session, teams: tuple[str, ...]) -> None:
    """Write features/<team>/feature_store.yaml for the local environment.

    The same config the features plane uses for the team locally (project, registry, online
    and offline store, from features/stores/local.yaml), so `feast plan`, `feast apply` and
    `feast ui` work in that folder. The file is git-ignored; `shipyard up` writes it too.
    """
    from shipyard.planes.features.localrepo import write_repo_configs

    for written in write_repo_configs(session.root, session.specs(), teams=teams):
        where = written.path.relative_to(session.root)
        click.echo(f"{written.team}: wrote {where}" if written.changed else f"{written.team}: {where} is up to date")
