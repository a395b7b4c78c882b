"""The platform's shared vocabulary: Teams and Environments, which every plane may read.

A team owns a namespace (``team_namespace``) and what its specs declare; other teams may use
what it exports (``exports``, ``cross_team``); an environment names where its platform
services answer (``environment``) and which MLflow server runs log to (``tracking``).
The tenancy plane registers the two kinds; any plane reads them from here, so no plane
imports another and a third-party plane can replace a built-in one.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

from shipyard.sdk.errors import UserError
from shipyard.sdk.kinds import NAME_PATTERN, Kind, Spec, SpecModel, SpecSet
from shipyard.sdk.model import Diagnostic, FieldPath
from shipyard.sdk.planes import Target

#: Kubernetes resource quantity ("500m", "64", "256Gi", "1.5").
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"


def _number_as_text(value: Any) -> Any:
    # `cpu: 64` in YAML is a number; Kubernetes wants the quantity as a string.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Quantity = Annotated[
    str,
    BeforeValidator(_number_as_text),
    StringConstraints(pattern=QUANTITY_PATTERN),
    # what the loader accepts, so editors agree with `shipyard validate`
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": QUANTITY_PATTERN}, {"type": "number", "minimum": 0}]}),
]
Owner = Annotated[
    str,
    StringConstraints(pattern=r"^(@[A-Za-z0-9-]+(/[A-Za-z0-9._-]+)?|[^@\s]+@[^@\s]+\.[a-z]{2,})$"),
    Field(description="A GitHub handle (@alice, @org/team) or an e-mail address"),
]


class Quota(SpecModel):
    """Hard limits on what the team's namespace may request."""

    gpu: int = Field(default=0, ge=0, le=4096, description="GPUs the namespace may request at once (nvidia.com/gpu)")
    cpu: Quantity = Field(
        default="16", description="A Kubernetes quantity such as 64 or 500m: CPUs the namespace may request"
    )
    memory: Quantity = Field(
        default="64Gi", description="A Kubernetes quantity such as 256Gi: memory the namespace may request"
    )


def _finite(value: Any) -> Any:
    # YAML reads .inf and .nan as floats, and pydantic would let .inf through `ge=0`
    number = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError("a finite number; .inf and .nan are not amounts, write a number such as 1000")
    return value


#: A float that is a real amount: never infinite, never not-a-number.
Finite = Annotated[float, BeforeValidator(_finite), Field(allow_inf_nan=False)]


class Budget(SpecModel):
    monthly_usd: Finite = Field(ge=0, description="Monthly spend the team is allowed, in US dollars")


def _inside(value: str) -> str:
    if ".." in value.split("/"):
        raise ValueError(f"a path inside the team's prefix: '{value}' has a '..' segment; remove it")
    return value


RegisteredModel = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
FeatureService = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
DataPath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?$"), AfterValidator(_inside)]


class Exports(SpecModel):
    """What other teams' specs may reference of this team's; everything else is the team's alone."""

    registered_models: list[RegisteredModel] = Field(
        default_factory=list,
        description="MLflow registered models this team's pipelines register that other teams' "
        "ModelDeployments may serve (spec.registeredModel)",
    )
    feature_services: list[FeatureService] = Field(
        default_factory=list,
        description="Feast feature services of features/<team>/ that other teams' ModelDeployments may read "
        "(spec.smoke.featureService)",
    )
    data_paths: list[DataPath] = Field(
        default_factory=list,
        description="Paths under this team's data prefixes (the offline store's and pipeline root's '{team}' "
        "folder, e.g. transactions.parquet; a path ending in '/' is a folder) that other teams' pipeline "
        "parameters may name",
    )


class TeamSpec(SpecModel):
    owners: list[Owner] = Field(min_length=1, description="Who approves this team's changes")
    group: str = Field(
        pattern=r"^[A-Za-z0-9:@._-]+$",
        description="An identity-provider group name (letters, digits, ':@._-'), bound to the namespace's edit role",
    )
    namespace: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="Kubernetes namespace; defaults to the team name"
    )
    cost_center: str = Field(
        pattern=r"^[A-Za-z0-9-]{1,32}$",
        description="A cost-center code (letters, digits, '-'; up to 32) for cost allocation",
    )
    quota: Quota = Field(default_factory=Quota)
    budget: Budget
    exports: Exports = Field(
        default_factory=Exports,
        description="What other teams may use of this team's (models, feature services, data); nothing by default",
    )


TEAM = Kind(
    "Team",
    TeamSpec,
    globs=("platform/teams/*.yaml", "platform/teams/*.yml"),
    description="A tenant of the platform: owners, namespace, quotas and budget.",
    team_scoped=False,
)


def namespace_of(team: Spec) -> str:
    """A Team spec's Kubernetes namespace: ``spec.namespace``, else the team's name."""
    spec: TeamSpec = team.spec
    return spec.namespace or team.name


def team_file(specs: SpecSet, team: str) -> tuple[str, ...]:
    """The file declaring the team called ``team`` (none when it is not declared): an input of its units."""
    found = specs.named(TEAM.name, team)
    return () if found is None else (found.source.file,)


def team_namespace(specs: SpecSet, team: str) -> str:
    """The namespace of the team called ``team`` (its name when the team is not declared)."""
    found = specs.named(TEAM.name, team)
    return namespace_of(found) if found is not None else team


def exports(specs: SpecSet, team: str) -> Exports:
    """What the team called ``team`` exports (nothing when it is not declared)."""
    found = specs.named(TEAM.name, team)
    return found.spec.exports if found is not None else Exports()


def cross_team(
    specs: SpecSet,
    spec: Spec,
    path: FieldPath,
    *,
    value: str,
    what: str,
    owner: str,
    why: str,
    export: str | None,
    hint: str = "",
    entry: str = "",
) -> Diagnostic:
    """The error for ``spec`` (of one team) naming, at ``path``, ``value``: team ``owner``'s ``what``, as ``why``
        says. ``export`` is the ``spec.exports`` field that would allow it; None for what no team can share (``hint``
    then says what to do); ``entry`` is what that field would list (``value`` unless given)."""
    team = spec.team or spec.name  # a Team spec speaks for itself
    got = f"'{value}', {what} of team {owner} ({why}), not of team {team}"
    if export is None:
        return spec.diagnostic(path, got=got, expected=f"team {team}'s own", hint=hint or f"no team shares its {what}")
    where = ", ".join(team_file(specs, owner)) or f"platform/teams/{owner}.yaml"
    return spec.diagnostic(
        path,
        got=got,
        expected=f"team {team}'s own, or one team {owner} exports",
        hint=f"a team may use another team's {what} only if that team exports it: "
        f"'{entry or value}' in spec.exports.{export} of {where}",
    )


# -- environments ---------------------------------------------------------------------------------

URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"


class Kubeflow(SpecModel):
    host: str = Field(pattern=URL_PATTERN, description="The Kubeflow Pipelines API endpoint (kfp.Client host)")
    pipeline_root: str | None = Field(
        default=None,
        pattern=r"^(s3|gs|minio)://\S+$",
        description="Where runs keep their artifacts; '{team}' is replaced by the team name",
    )


class Mlflow(SpecModel):
    tracking_uri: str = Field(pattern=URL_PATTERN, description="The MLflow tracking server runs log to")


class Kubernetes(SpecModel):
    context: str | None = Field(
        default=None, description="The kubeconfig context of the environment's cluster (default: the current one)"
    )


class StateBucket(SpecModel):
    bucket: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="The S3 bucket holding the environment's apply lock, journal and last-applied record "
        "(the infra stack's `state` bucket: pulumi stack output buckets)",
    )
    prefix: str = Field(
        default="shipyard", pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", description="Key prefix in the bucket"
    )
    region: str | None = Field(
        default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$", description="The bucket's AWS region (default: AWS_REGION)"
    )


class EnvironmentSpec(SpecModel):
    state: StateBucket | None = Field(
        default=None, description="Where applies to this environment keep their state; required to apply"
    )
    kubeflow: Kubeflow | None = None
    mlflow: Mlflow | None = None
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)


ENVIRONMENT = Kind(
    "Environment",
    EnvironmentSpec,
    globs=("platform/environments/*.yaml",),
    description="A cloud environment's platform endpoints (Kubeflow Pipelines, MLflow, the Kubernetes context).",
    team_scoped=False,
)


def environment(specs: SpecSet, name: str) -> EnvironmentSpec:
    """The Environment spec named ``name``."""
    hint = f"add platform/environments/{name}.yaml (kind: Environment) with its endpoints"
    spec: EnvironmentSpec = specs.require(ENVIRONMENT.name, name, hint=hint).spec
    return spec


@dataclass(frozen=True)
class Tracking:
    """Where MLflow runs and models of a target go: the tracking URI, and the artifact root
    (empty where the server decides)."""

    uri: str
    artifact_root: str = ""


#: The local service whose URL is the local target's tracking URI (``shipyard up`` starts it).
MLFLOW_SERVICE = "mlflow"


def tracking(specs: SpecSet, target: Target) -> Tracking:
    """The MLflow tracking server of ``target``.

    A cloud environment names it in its Environment spec. Locally it is the MLflow server
    the local platform runs (found in the process table), else a SQLite file and an
    artifact folder in the local state.
    """
    if not target.is_local:
        mlflow = environment(specs, target.name).mlflow
        if mlflow is None:
            raise UserError(
                f"environment '{target.name}' names no MLflow tracking server",
                hint=f"set spec.mlflow.trackingUri in platform/environments/{target.name}.yaml",
            )
        return Tracking(mlflow.tracking_uri)
    url = target.endpoints.get(MLFLOW_SERVICE)
    if url:
        return Tracking(url)
    folder = target.state_dir / "mlflow"
    return Tracking(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts"))
