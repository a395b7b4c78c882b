"""The ``Environment`` kind: where a cloud environment's platform services answer.

One file per environment (``platform/environments/<env>.yaml``). It holds
addresses only; credentials come from the machine that runs apply (a token in
the environment, or the CI role), never from the repo.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from shipyard.sdk.errors import UserError
from shipyard.sdk.kinds import Kind, SpecModel, SpecSet

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


class EnvironmentSpec(SpecModel):
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


def mlflow_tracking(specs: SpecSet, name: str, local_state: Path) -> tuple[str, str]:
    """(tracking URI, artifact root) for environment ``name``; the artifact root is empty where the server decides.

    Locally: ``$MLFLOW_TRACKING_URI`` when set (the local platform's server), else a SQLite
    file and an artifact folder in the local state.
    """
    if name != "local":
        mlflow = environment(specs, name).mlflow
        if mlflow is None:
            raise UserError(
                f"environment '{name}' names no MLflow tracking server",
                hint=f"set spec.mlflow.trackingUri in platform/environments/{name}.yaml",
            )
        return mlflow.tracking_uri, ""
    tracking = os.environ.get("MLFLOW_TRACKING_URI")
    if tracking:
        return tracking, ""
    folder = local_state / "mlflow"
    return f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts")
