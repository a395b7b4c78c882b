"""The features plane's CLI verb: ``shipyard seed``."""

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
