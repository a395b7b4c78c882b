"""The pipelines plane's CLI verb: ``shipyard compile``."""

from __future__ import annotations

import click

from shipyard.sdk.commands import Session


@click.command("compile")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a committed compiled file is out of date.")
@click.pass_obj
def compile_pipelines(session: Session, check: bool) -> None:
    """Compile every Pipeline to KFP IR YAML, in a worker process.

    Writes the IR beside each pipeline whose spec names a `compiled:` file (kept in
    git for reviewers who want the raw IR); `shipyard plan` fails while one is stale.
    """
    from shipyard.planes.pipelines import PIPELINE, PipelinesPlane

    ctx, _ = session.context()
    plane = next(p for p in ctx.providers if isinstance(p, PipelinesPlane))
    fresh = plane.compile(session.root, ctx.specs.of_kind(PIPELINE.name))
    stale = []
    for spec in ctx.specs.of_kind(PIPELINE.name):
        source = fresh[(str(spec.team), spec.name)]
        click.echo(f"compiled {spec.team}/{spec.name} ({len(source.splitlines())} lines of IR)")
        if spec.spec.compiled is None:
            continue
        path = session.root / "pipelines" / str(spec.team) / spec.name / spec.spec.compiled
        shown = path.relative_to(session.root)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != source:
                stale.append(str(shown))
        else:
            path.write_text(source, encoding="utf-8")
            click.echo(f"wrote {shown}")
    if stale:
        click.echo("out of date: " + ", ".join(stale) + " (run: shipyard compile)", err=True)
        raise click.exceptions.Exit(1)
