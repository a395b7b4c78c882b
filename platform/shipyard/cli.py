"""The ``shipyard`` command. Start-up stays light: only click is imported here;
the engine, pydantic and rich load inside the command that needs them.

Exit codes: 0 ok · 1 user error · 2 changes present (plan --detailed-exitcode) · 3 internal error.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from shipyard.engine.registry import Registry
    from shipyard.planes.models.registry import ModelRegistry
    from shipyard.sdk.kinds import Spec
    from shipyard.sdk.model import Diagnostic

EXIT_OK, EXIT_USER, EXIT_CHANGES, EXIT_INTERNAL = 0, 1, 2, 3
DEFAULT_SCHEMA_DIR = "platform/schemas"


class Session:
    """What every command shares: the repo root and, loaded on first use, the plugins."""

    def __init__(self, repo: Path | None, verbose: bool) -> None:
        self.root = (repo or _find_root(Path.cwd())).resolve()
        self.verbose = verbose
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from shipyard.engine.registry import discover

            self._registry = discover()
        return self._registry


def _find_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


pass_session = click.make_pass_decorator(Session)
FORMAT_HELP = "Output format."


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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

    Exit codes: 0 ok, 1 user error, 2 changes present (with --detailed-exitcode), 3 internal error.
    """
    ctx.obj = Session(repo, verbose)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", help=FORMAT_HELP)
@pass_session
def validate(session: Session, fmt: str) -> None:
    """Check every spec and the policies that need only specs; change nothing.

    Errors print as path:line:col with a caret under the problem; all of them at once.
    """
    from shipyard.engine.planner import validate as run_validate

    result = run_validate(session.registry, session.root)
    _report(result.findings, fmt)
    if _blocking(result.findings):
        raise click.exceptions.Exit(EXIT_USER)
    if fmt == "text":
        files = len(result.specs.files)
        click.echo(f"ok: {len(result.specs)} specs in {files} file{'s' if files != 1 else ''} are valid.")


@cli.command()
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
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the full plan as JSON here.")
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
      shipyard plan -t dev --plane pipelines         # one plane of an environment
    """
    from shipyard.engine import planner
    from shipyard.engine.targets import parse_target

    result = planner.plan(session.registry.only(planes), session.root, parse_target(target), env)
    if out is not None:
        from shipyard.core.render.jsonout import render_json

        out.write_text(render_json(result.plan, result.findings))
    if fmt == "text":
        _report(result.findings, "text")
        from shipyard.core.render.text import render_text

        _console().print(render_text(result.plan, show_unchanged=show_unchanged), highlight=False)
    elif fmt == "markdown":
        from shipyard.core.render.markdown import render_markdown

        click.echo(render_markdown(result.plan, result.findings, artifact=out.name if out else "plan.json"), nl=False)
    elif fmt == "json":
        from shipyard.core.render.jsonout import render_json

        click.echo(render_json(result.plan, result.findings), nl=False)
    else:
        from shipyard.core.render.github import render_github

        click.echo(render_github(result.plan, result.findings), nl=False)
    if _blocking(result.findings):
        raise click.exceptions.Exit(EXIT_USER)
    if detailed_exitcode and result.plan.has_changes:
        raise click.exceptions.Exit(EXIT_CHANGES)


@cli.command()
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

    Holds a lock on the target, journals every change (a crashed apply resumes
    where it stopped), retries transient errors and verifies the result.
    Cloud targets need a reviewed --plan or --yes.
    """
    from shipyard.engine.apply import apply as run_apply
    from shipyard.engine.targets import parse_target
    from shipyard.sdk.errors import UserError

    ref = parse_target(target)
    reviewed = _read_plan(plan_file) if plan_file else None
    if reviewed is None and ref.kind == "environment" and not yes:
        raise UserError(
            f"refusing to apply an unreviewed plan to '{ref.name}'",
            hint=f"shipyard plan -t {ref.name} --out plan.json; review; shipyard apply -t {ref.name} --plan plan.json",
        )
    from shipyard.core.render.common import SYMBOL

    report = run_apply(
        session.registry.only(planes),
        session.root,
        ref,
        reviewed=reviewed,
        on_change=lambda c: click.echo(f"  {SYMBOL[c.action]} {c.action.value:<7} {c.key}"),
    )
    resumed = f", {len(report.resumed)} already done before" if report.resumed else ""
    click.echo(f"Applied {len(report.applied)} changes to {ref.name}{resumed} (plan {report.plan.hash[:12]}).")


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help=FORMAT_HELP)
@pass_session
def plugins(session: Session, fmt: str) -> None:
    """List installed plugins with their distribution, version, kinds and planes."""
    infos = session.registry.plugins
    if fmt == "json":
        import json

        rows = [
            {**vars(i), "kinds": list(i.kinds), "planes": list(i.planes), "policies": list(i.policies)} for i in infos
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Column, Table

    table = Table(
        Column("plugin", no_wrap=True),
        Column("distribution", no_wrap=True),
        "version",
        "kinds",
        "planes",
        "policies",
        box=None,
    )
    for info in infos:
        table.add_row(
            info.name,
            info.distribution,
            info.version,
            ", ".join(info.kinds) or "-",
            ", ".join(info.planes) or "-",
            str(len(info.policies)),
        )
    _console().print(table)


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Folder for <kind>.schema.json files. Default: {DEFAULT_SCHEMA_DIR} in the repo.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files are missing or out of date.")
@pass_session
def schema(session: Session, out: Path | None, check: bool) -> None:
    """Write a JSON Schema per kind so editors autocomplete and check specs.

    Put this modeline at the top of a spec (path relative to the spec file):

    \b
      # yaml-language-server: $schema=../schemas/team.schema.json
    """
    import json

    from shipyard.core.specs import document_schema

    folder = out or session.root / DEFAULT_SCHEMA_DIR
    stale: list[str] = []
    for kind in sorted(session.registry.kinds.values(), key=lambda k: k.name):
        path = folder / f"{kind.name.lower()}.schema.json"
        text = json.dumps(document_schema(kind), indent=2, sort_keys=True) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        click.echo(f"wrote {path}")
    if stale:
        click.echo("out of date: " + ", ".join(stale) + " (run: shipyard schema)", err=True)
        raise click.exceptions.Exit(EXIT_USER)


@cli.command()
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
@pass_session
def seed(session: Session, teams: tuple[str, ...], seed_value: int, corrupt: str | None, force: bool) -> None:
    """Write each team's synthetic data into the local target's offline store.

    Teams opt in with features/<team>/synthetic.py. Existing data is kept unless
    --force or --corrupt is given. Then `shipyard plan` runs the data checks on it.
    """
    from shipyard.engine.planner import validate as load
    from shipyard.planes.features.seed import seed as write

    for seeded in write(
        session.root,
        load(session.registry, session.root).specs,
        teams=teams,
        seed_value=seed_value,
        corrupt=corrupt,
        force=force,
    ):
        verb = "kept existing data in" if seeded.skipped else "wrote"
        click.echo(f"{seeded.team}: {verb} {seeded.folder.relative_to(session.root)}")


@cli.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a committed compiled file is out of date.")
@pass_session
def compile(session: Session, check: bool) -> None:
    """Compile every Pipeline to KFP IR YAML, in a worker process.

    Writes the IR beside each pipeline whose spec names a `compiled:` file (kept in
    git for reviewers who want the raw IR); `shipyard plan` fails while one is stale.
    """
    from shipyard.engine.planner import validate as load
    from shipyard.planes.pipelines import PIPELINE, PipelinesPlane, key
    from shipyard.sdk import DesiredContext

    specs = load(session.registry, session.root).specs
    plane = session.registry.plane("pipelines")
    assert isinstance(plane, PipelinesPlane)
    fresh = plane.compiled(DesiredContext(session.root, specs, "local"))
    stale = []
    for spec in specs.of_kind(PIPELINE.name):
        ir = fresh[key(str(spec.team), spec.name)]
        click.echo(f"compiled {spec.team}/{spec.name} ({len(ir.splitlines())} lines of IR)")
        if spec.spec.compiled is None:
            continue
        path = session.root / "pipelines" / str(spec.team) / spec.name / spec.spec.compiled
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != ir:
                stale.append(str(path.relative_to(session.root)))
        else:
            path.write_text(ir, encoding="utf-8")
            click.echo(f"wrote {path.relative_to(session.root)}")
    if stale:
        click.echo("out of date: " + ", ".join(stale) + " (run: shipyard compile)", err=True)
        raise click.exceptions.Exit(EXIT_USER)


def _local_deployment(session: Session, ref: str, environment: str) -> tuple[Spec, ModelRegistry]:
    """The deployment and the local registry; other environments' aliases are moved by apply only."""
    from shipyard.engine.planner import validate as load
    from shipyard.planes.models import deployment, local_registry
    from shipyard.sdk.errors import UserError

    specs = load(session.registry, session.root).specs
    spec = deployment(specs, ref)
    if environment != "local":
        raise UserError(
            f"aliases in '{environment}' move only when a merged change is applied, never by hand",
            hint=f"set spec.serve.{environment}.version in {spec.source.file}, open a pull request, "
            f"and apply it once merged",
        )
    return spec, local_registry(specs, session.root)


@cli.command()
@click.argument("deployment", metavar="TEAM/MODEL")
@click.option("--to", "alias", help="The alias to move. Default: the one the environment serves.")
@click.option("--version", "version", type=int, help="The model version. Default: the newest not rolled back.")
@click.option("--env", default="local", show_default=True, help="Environment (others move by pull request).")
@click.option("--reason", default="promoted by hand", show_default=True, help="Recorded on the version.")
@pass_session
def promote(session: Session, deployment: str, alias: str | None, version: int | None, env: str, reason: str) -> None:
    """Move a model's alias to a version, only if it passes the deployment's gates.

    Who, when, why and the previous version are recorded as tags on the version, so
    `shipyard rollback` can go back. A failing gate is named and nothing moves (exit 1).
    """
    from shipyard.planes.models import promote as run_promote

    spec, registry = _local_deployment(session, deployment, env)
    alias = alias or spec.spec.serve[env].alias
    model = spec.spec.registered_model
    version = version or next(iter(registry.versions(model, rejected=False)), None)
    if version is None:
        from shipyard.sdk.errors import UserError

        raise UserError(f"{model} has no versions", hint="train it first: shipyard apply")
    previous = run_promote(registry, spec, alias, version, why=reason)
    left = "nothing" if previous is None else f"version {previous}"
    click.echo(f"{model}@{alias} → version {version} (was {left}). Run `shipyard apply` to serve it.")


@cli.command()
@click.argument("deployment", metavar="TEAM/MODEL")
@click.option("--alias", help="The alias to move back. Default: the one the environment serves.")
@click.option("--env", default="local", show_default=True, help="Environment (others move by pull request).")
@click.option("--reason", default="rolled back by hand", show_default=True, help="Recorded on both versions.")
@pass_session
def rollback(session: Session, deployment: str, alias: str | None, env: str, reason: str) -> None:
    """Move a model's alias back to the version it served before its last promotion.

    The version it leaves is marked rejected, so it is not promoted again automatically.
    """
    from shipyard.planes.models import rollback as run_rollback

    spec, registry = _local_deployment(session, deployment, env)
    alias = alias or spec.spec.serve[env].alias
    left, back = run_rollback(registry, spec, alias, why=reason)
    model = spec.spec.registered_model
    click.echo(f"{model}@{alias} → version {back} (version {left} rejected). Run `shipyard apply` to serve it.")


@cli.command()
@click.pass_context
def up(ctx: click.Context) -> None:
    """Bring the whole platform up on this machine, through the same plan and apply as the cloud.

    Starts the local services (the MLflow tracking server and UI) or finds them running,
    validates the repo, writes synthetic data for teams that have none, then plans and
    applies every plane to the local target: Feast, the data checks, training pipelines,
    promotion through the gates, model servers. Then it sends each model a smoke request
    (features from the online store, then a prediction) and prints a summary.

    Run it again at any time: it does only what changed, and restarts a service or model
    server that stopped. A team whose change fails does not stop the other teams; the
    summary says what failed, and the exit code is 1.
    """
    import os

    from shipyard.engine.local import start_services
    from shipyard.sdk.errors import ChangesFailed

    session: Session = ctx.obj
    steps = _Steps(_console())
    with steps.run("validate", "validating specs and policies"):
        ctx.invoke(validate)  # click fills each command's own defaults
    with steps.run("services", "starting local services") as progress:
        running = start_services(
            session.registry, session.root, lambda s: progress.update(f"starting {s.name}: {s.description}")
        )
    for service in running:
        os.environ.update(service.service.exports(service.process.url))  # how the planes find it
        verb = "started" if service.started_now else "running"
        click.echo(f"{service.service.name}: {verb} at {service.process.url}")
    with steps.run("seed", "writing synthetic data where a team has none"):
        ctx.invoke(seed)
    failed: dict[str, str] = {}
    with steps.run("apply", "planning every plane") as progress:
        try:
            _apply_local(session, progress)
        except ChangesFailed as error:
            failed = error.failed | dict.fromkeys(error.skipped, "not tried: an earlier change of its team failed")
    with steps.run("smoke", "sending each model a smoke request"):
        smoked = _smoke_all(session)
    _summary(running, smoked, failed, steps)
    if failed or not all(result.ok for result in smoked):
        raise click.exceptions.Exit(EXIT_USER)


def _age(moment: str | None) -> str:
    """``2026-11-25 00:00 UTC (3 h ago)``: how fresh the features a model read were."""
    if moment is None:
        return "-"
    from datetime import UTC, datetime

    at = datetime.fromisoformat(moment)
    hours = (datetime.now(UTC) - at).total_seconds() / 3600
    return f"{at:%Y-%m-%d %H:%M} UTC ({hours:.0f} h ago)"


class _Steps:
    """``up``'s steps, each under a spinner, timed for the summary (and the benchmark that reads it)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def run(self, name: str, doing: str) -> Iterator[Any]:
        started = time.perf_counter()
        try:
            with self.console.status(doing) as progress:
                yield progress
        finally:
            self.seconds[name] = time.perf_counter() - started
        self.console.print(f"[green]✓[/] {name} ({self.seconds[name]:.1f} s)")


def _apply_local(session: Session, progress: Any) -> None:
    """Plan and apply the local target through the engine, one line per change."""
    from shipyard.core.render.common import SYMBOL
    from shipyard.engine.apply import apply as run_apply
    from shipyard.engine.targets import parse_target

    def started(change: Any) -> None:
        click.echo(f"  {SYMBOL[change.action]} {change.action.value:<7} {change.key}")
        progress.update(f"{change.action.value} {change.key}")

    report = run_apply(session.registry, session.root, parse_target("local"), on_change=started)
    click.echo(f"Applied {len(report.applied)} changes to local (plan {report.plan.hash[:12]}).")


def _smoke_all(session: Session) -> list[Any]:
    from shipyard.core.repo import load_specs
    from shipyard.planes.models.smoke import smoke

    specs = load_specs(session.root, session.registry.kinds)
    features: Any = session.registry.plane("features")
    served = [s for s in specs.of_kind("ModelDeployment") if "local" in s.spec.serve]
    return [smoke(session.root, specs, spec, features) for spec in served]


def _summary(running: Any, smoked: list[Any], failed: dict[str, str], steps: _Steps) -> None:
    """What runs where, what each model answered, what failed and why."""
    from rich.table import Table

    console = _console()
    console.print("\n[bold]Services[/]")
    for service in running:
        console.print(f"  {service.service.name:<10} {service.process.url}  ({service.service.description})")
    if smoked:
        console.print("\n[bold]Models[/]")
        models = Table("deployment", "serving", "features as of", "prediction", box=None, pad_edge=False)
        for result in smoked:
            shown = "[red]failed[/]" if not result.ok else json.dumps(result.prediction)
            version = f"v{result.version} @{result.alias}" if result.version else "-"
            models.add_row(result.deployment, version, _age(result.features_as_of), shown)
        console.print(models)
        for result in smoked:
            if result.url:
                v1, v2 = result.endpoints
                console.print(f"  {result.deployment}:  V1 POST {v1}\n  {' ' * len(result.deployment)}   V2 POST {v2}")
    problems = dict(failed) | {r.deployment: f"smoke request: {r.error}" for r in smoked if not r.ok}
    if problems:
        console.print("\n[bold red]Failed[/]")
        for what, why in problems.items():
            console.print(f"  [red]✗[/] {what}: {why}")
    timings = " · ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.seconds.items())
    console.print(f"\nsteps: {timings}")
    console.print("`shipyard status` lists the processes; `shipyard down` stops them.")


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help=FORMAT_HELP)
@pass_session
def status(session: Session, fmt: str) -> None:
    """List the local platform's processes: what each is, PID, URL, and whether it is up and healthy.

    Exits 1 when one of them has stopped or does not answer its health check.
    """
    from shipyard.sdk import processes
    from shipyard.sdk.planes import local_state_dir

    rows = []
    for process in processes.table(local_state_dir(session.root)):
        running = processes.alive(process)
        rows.append((process, running, running and processes.healthy(process)))
    if fmt == "json":
        found = [p.to_dict() | {"url": p.url, "alive": running, "healthy": ok} for p, running, ok in rows]
        click.echo(json.dumps({"processes": found}, indent=2))
    elif not rows:
        click.echo("Nothing runs locally. `shipyard up` brings the platform up.")
    else:
        from rich.table import Table

        shown = Table("process", "pid", "url", "state", box=None, pad_edge=False)
        for process, running, ok in rows:
            state = "healthy" if ok else "not answering" if running else "exited"
            shown.add_row(process.name, str(process.pid), process.url, state)
        _console().print(shown)
    if any(not ok for _, _, ok in rows):
        raise click.exceptions.Exit(EXIT_USER)


@cli.command()
@click.option("--purge", is_flag=True, help="Also delete .shipyard/ (local state, MLflow data, logs, plans).")
@pass_session
def down(session: Session, purge: bool) -> None:
    """Stop every process the local platform started, and nothing else.

    Each is stopped only if its PID still belongs to the process Shipyard started (PID and
    start time match): SIGTERM, then SIGKILL after 10 s.
    """
    import shutil

    from shipyard.sdk import processes
    from shipyard.sdk.planes import STATE_DIR, local_state_dir

    for process in processes.table(local_state_dir(session.root)):
        was_up = processes.alive(process)
        processes.stop(process)
        click.echo(f"{'stopped' if was_up else 'forgot (already gone)'}: {process.name} (pid {process.pid})")
    if purge:
        shutil.rmtree(session.root / STATE_DIR, ignore_errors=True)
        click.echo(f"removed {STATE_DIR}/")


@cli.command()
def version() -> None:
    """Print Shipyard's version."""
    from shipyard import __version__

    click.echo(f"shipyard {__version__} (python {sys.version.split()[0]})")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _blocking(findings: Sequence[Diagnostic]) -> bool:
    from shipyard.core.policies import blocking

    return bool(blocking(findings))


def _report(findings: Sequence[Diagnostic], fmt: str) -> None:
    """Findings in the chosen format: text on stderr, machine formats on stdout."""
    if fmt == "github":
        from shipyard.core.render.github import render_github

        click.echo(render_github(None, findings), nl=False)
    elif fmt == "json":
        from shipyard.core.render.jsonout import render_json

        click.echo(render_json(None, findings), nl=False)
    elif findings:
        from shipyard.core.render.diagnostics import format_diagnostics

        click.echo(format_diagnostics(findings), err=True)


def _read_plan(path: Path) -> Any:
    import json

    from shipyard.core.plan import Plan
    from shipyard.sdk.errors import UserError

    try:
        data = json.loads(path.read_text())
        return Plan.from_dict(data.get("plan", data))
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{path}: not a usable plan file ({error})", hint="make one with shipyard plan --out"
        ) from error


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs the CLI and turns every outcome into an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    fmt = _option_value(args, "--format")
    try:
        result = cli.main(args=args, prog_name="shipyard", standalone_mode=False)
        return result if isinstance(result, int) else EXIT_OK
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_USER
    except click.ClickException as error:  # usage errors are user errors, not "changes present"
        error.show()
        return EXIT_USER
    except Exception as error:
        return _fail(error, verbose, fmt)


def _fail(error: Exception, verbose: bool, fmt: str | None) -> int:
    from shipyard.sdk.errors import ShipyardError, SpecError
    from shipyard.sdk.extras import missing_dependency

    if isinstance(error, ModuleNotFoundError):
        error = missing_dependency(error) or error

    if isinstance(error, SpecError):
        _report(error.diagnostics, fmt if fmt in ("json", "github") else "text")
        return error.exit_code
    if verbose:
        import traceback

        traceback.print_exception(error)
    if isinstance(error, ShipyardError):
        hint = getattr(error, "hint", "")
        click.echo(f"error: {error}" + (f"\nhint: {hint}" if hint else ""), err=True)
        return error.exit_code
    if not verbose:
        click.echo(
            f"internal error: {type(error).__name__}: {error} (rerun with --verbose for the traceback)", err=True
        )
    return EXIT_INTERNAL


def _option_value(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
