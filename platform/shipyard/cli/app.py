"""The ``shipyard`` group, its session, and how every outcome becomes an exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shipyard.cli.output import EXIT_INTERNAL, EXIT_OK, EXIT_USER, report

if TYPE_CHECKING:
    from shipyard.engine.registry import Registry
    from shipyard.sdk.kinds import SpecSet
    from shipyard.sdk.planes import DesiredContext, Target

#: The built-in verbs, by module; planes add theirs through the shipyard_commands hook.
BUILT_IN = {
    "validate": "specs",
    "schema": "specs",
    "plugins": "specs",
    "policies": "specs",
    "version": "specs",
    "plan": "plans",
    "apply": "plans",
    "unlock": "state",
    "drift": "state",
    "render": "render",
    "owners": "owners",
    "new-team": "teams",
    "team": "teams",
    "ci": "ci",
    "up": "local",
    "status": "local",
    "down": "local",
}


class Session:
    """What every command shares (``shipyard.sdk.commands.Session``): the repo root, the output
    format, and, loaded on first use, the plugins."""

    def __init__(self) -> None:
        self.repo: Path | None = None
        self.verbose = False
        self.fmt: str | None = None  # the running command's --format, for its errors too
        self._registry: Registry | None = None

    @property
    def root(self) -> Path:
        return (self.repo or _find_root(Path.cwd())).resolve()

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from shipyard.engine.registry import discover

            _telemetry_off()  # before any plane's library loads
            self._registry = discover()
        return self._registry

    def specs(self) -> SpecSet:
        from shipyard.engine.planner import validate

        return validate(self.registry, self.root).specs

    def context(self, target: str = "local") -> tuple[DesiredContext, Target]:
        from shipyard.engine import planner
        from shipyard.engine.targets import parse_target
        from shipyard.sdk.planes import DesiredContext

        resolved = planner.resolve(self.registry, self.root, parse_target(target))
        ctx = DesiredContext(self.root, self.specs(), resolved.name, live=False, providers=self.registry.providers)
        return ctx, resolved


def _find_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def remember_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A ``--format`` callback: errors the command raises are printed in the same format."""
    ctx.ensure_object(Session).fmt = value
    return value


class _Group(click.Group):
    """The built-in verbs, loaded when called, and the verbs plugins add (``shipyard_commands``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*BUILT_IN, *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in BUILT_IN:
            import importlib

            module = importlib.import_module(f"shipyard.cli.{BUILT_IN[name]}")
            command: click.Command = getattr(module, name.replace("-", "_"))
            return command
        return self._plugin_commands(ctx).get(name)

    @staticmethod
    def _plugin_commands(ctx: click.Context) -> dict[str, click.Command]:
        from shipyard.sdk.errors import PluginError

        found = {}
        for command in ctx.ensure_object(Session).registry.commands:
            if command.name in BUILT_IN or command.name is None:
                raise PluginError(f"a plugin adds the command '{command.name}', which is Shipyard's own")
            found[command.name] = command
        return found


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--repo",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="SHIPYARD_REPO",
    help="Repository root. Default: the git top level above the current folder.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for internal errors.")
@click.pass_context
def cli(ctx: click.Context, repo: Path | None, verbose: bool) -> None:
    """Shipyard: plan and apply an AI platform from one git repository.

    Specs (Teams, pipelines, features, model deployments) are validated, turned
    into Resources by plugins ("planes"), diffed against a target and applied.

    \b
    Targets:
      local          the embedded platform on this machine (.shipyard/local)
      base:<rev>     the desired state at another git revision (a PR plan)
      dev|staging|prod  a cloud environment, through its real APIs

    Exit codes: 0 ok, 1 user error, 2 changes present (with --detailed-exitcode),
    3 internal error or failed apply.
    """
    session = ctx.ensure_object(Session)
    session.repo, session.verbose = repo, verbose


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs the CLI and turns every outcome into an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    session = Session()
    session.verbose = "-v" in args or "--verbose" in args  # before parsing: a usage error may come first
    try:
        result = cli.main(args=args, prog_name="shipyard", standalone_mode=False, obj=session)
        return result if isinstance(result, int) else EXIT_OK
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_USER
    except click.ClickException as error:  # usage errors are user errors, not "changes present"
        error.show()
        return EXIT_USER
    except Exception as error:
        return _fail(error, session)


def _telemetry_off() -> None:
    """Telemetry off in this process too (the MLflow client, Feast): their switches are only read from the
    environment. Every process Shipyard starts gets the same switches (``sdk.processes.TELEMETRY_OFF``)."""
    import os

    from shipyard.sdk.processes import TELEMETRY_OFF

    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)


def _fail(error: Exception, session: Session) -> int:
    from shipyard.sdk.errors import ShipyardError, SpecError
    from shipyard.sdk.extras import missing_dependency

    if isinstance(error, ModuleNotFoundError):
        error = missing_dependency(error) or error
    fmt = session.fmt if session.fmt in ("json", "github") else "text"
    if isinstance(error, SpecError):
        report(error.diagnostics, fmt)
        if fmt == "text" and error.stopped:
            click.echo(f"error: {error}", err=True)  # what the findings stopped, below where they are
        return error.exit_code
    if session.verbose:
        import traceback

        traceback.print_exception(error)
    if isinstance(error, ShipyardError):
        click.echo(f"error: {error}", err=True)
        return error.exit_code
    if not session.verbose:
        click.echo(
            f"internal error: {type(error).__name__}: {error} (rerun with --verbose for the traceback)", err=True
        )
    return EXIT_INTERNAL


def pass_session(command: Any) -> Any:
    """``@pass_session``: the command gets the Session."""
    return click.pass_obj(command)
