"""What a plugin's CLI verb (``shipyard_commands``) receives: the session of the command line.

Example, a plane's own verb::

    @click.command()
    @click.pass_obj
    def reindex(session: Session) -> None:
        ctx, target = session.context("local")
        click.echo(f"{len(ctx.specs.of_kind('VectorIndex'))} indexes in {target.name}")
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.planes import DesiredContext, Target


class Session(Protocol):
    """The command line's session, as the CLI gives it to every command."""

    root: Path

    def specs(self) -> SpecSet:
        """Every spec of the repo, validated (a bad spec stops the command with every error at once)."""
        ...

    def context(self, target: str = "local") -> tuple[DesiredContext, Target]:
        """A context over the validated specs for ``target``'s environment, and the resolved target
        (for ``local``: with the endpoints of the services running). No facts are pinned."""
        ...
