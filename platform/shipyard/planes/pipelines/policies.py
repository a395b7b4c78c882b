"""Cross-team isolation of what pipelines register: a team serves its own models, or those another team exports.

A registered model belongs to the team whose pipeline registers it (``PipelineSpec.model_name``, what the
``TrainedModels`` service answers). A ModelDeployment (read by kind and ``registered_model``, so this plane
imports no other) of another team may serve it only if the owner lists it in ``spec.exports.registeredModels``.
Registering versions of a model, or logging runs to an experiment, of another team is never allowed: exports
share what a team reads, not what it writes.
"""

from __future__ import annotations

from collections.abc import Iterator

from shipyard.planes.pipelines.spec import PipelineSpec
from shipyard.sdk.kinds import Spec, SpecSet
from shipyard.sdk.model import Diagnostic
from shipyard.sdk.planes import Policy, PolicyContext
from shipyard.sdk.platform import cross_team, exports

PIPELINE, DEPLOYMENT = "Pipeline", "ModelDeployment"


def _users(specs: SpecSet, field: str) -> dict[str, dict[str, Spec]]:
    """Each registered model (``field`` "model") or experiment, with the first pipeline of each team that uses it."""
    found: dict[str, dict[str, Spec]] = {}
    for pipeline in specs.of_kind(PIPELINE):
        spec: PipelineSpec = pipeline.spec
        assert pipeline.team is not None
        value = spec.model_name(pipeline.name, pipeline.team) if field == "model" else spec.experiment
        found.setdefault(value, {}).setdefault(pipeline.team, pipeline)
    return found


def serves_own_models(ctx: PolicyContext) -> Iterator[Diagnostic]:
    owners = _users(ctx.specs, "model")
    for deployment in ctx.specs.of_kind(DEPLOYMENT):
        model = getattr(deployment.spec, "registered_model", None)
        teams = owners.get(model or "", {})
        if not teams or deployment.team in teams:
            continue  # registered by no pipeline here (MLflow alone knows it), or by the team itself
        if any(model in exports(ctx.specs, team).registered_models for team in teams):
            continue
        owner, pipeline = next(iter(sorted(teams.items())))
        yield cross_team(
            ctx.specs,
            deployment,
            ("spec", "registeredModel"),
            value=str(model),
            what="registered model",
            owner=owner,
            why=f"registered by {pipeline.source.file}",
            export="registeredModels",
        )


def writes_own_models(ctx: PolicyContext) -> Iterator[Diagnostic]:
    """A model or experiment several teams' pipelines write to is the team's it is named after (``<team>`` or
    ``<team>-...``, as a default model name is): the others are refused; when none, each is, naming another."""
    for field, path, what in (
        ("model", ("spec", "registeredModel"), "registered model"),
        ("experiment", ("spec", "experiment"), "experiment"),
    ):
        for value, teams in sorted(_users(ctx.specs, field).items()):
            named_for = next((t for t in sorted(teams) if value == t or value.startswith(f"{t}-")), None)
            for team, pipeline in sorted(teams.items()):
                owner = named_for or next((other for other in sorted(teams) if other != team), team)
                if owner != team:
                    yield cross_team(
                        ctx.specs,
                        pipeline,
                        path if path in pipeline.positions else ("metadata", "name"),  # a default name
                        value=value,
                        what=what,
                        owner=owner,
                        why=f"{teams[owner].source.file} writes to it",
                        export=None,
                        hint=f"a team writes only to its own {what}s; rename this one, e.g. {team}-{pipeline.name}",
                    )


POLICIES = [
    Policy(
        "SY-ISO-001",
        "A deployment serves a model its own team registers, or one the registering team exports.",
        serves_own_models,
        target=f"spec:{DEPLOYMENT}",
        hint="serve the team's own model, or have its team add it to spec.exports.registeredModels",
    ),
    Policy(
        "SY-ISO-002",
        "No two teams' pipelines register the same model or log to the same experiment.",
        writes_own_models,
        target=f"spec:{PIPELINE}",
        hint="a team writes only to its own registered models and experiments; rename one",
    ),
]
