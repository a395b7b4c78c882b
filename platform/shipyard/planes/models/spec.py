"""The ``ModelDeployment`` kind: which MLflow model version an environment serves, how, and the gates to get there."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from shipyard.sdk.kinds import NAME_PATTERN, SpecModel
from shipyard.sdk.platform import Quantity

ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
#: A metric gate as a reviewer reads it: ``roc_auc >= 0.85``.
METRIC_GATE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(>=|<=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$")


class Resources(SpecModel):
    cpu: Quantity = Field(default="1", description="CPU request and limit of each replica (a Kubernetes quantity)")
    memory: Quantity = Field(default="2Gi", description="Memory request and limit of each replica")
    gpu: int = Field(default=0, ge=0, le=8, description="nvidia.com/gpu per replica; needs gpuPool")
    gpu_pool: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="The GPU node pool replicas run on (infra node pool name)"
    )

    @model_validator(mode="after")
    def _gpu_on_a_pool(self) -> Resources:
        if self.gpu and not self.gpu_pool:
            raise ValueError("resources.gpu needs resources.gpuPool: the node pool the replicas are scheduled on")
        return self


class Replicas(SpecModel):
    min: int = Field(default=1, ge=0, le=100, description="Fewest replicas (0 lets Serverless scale to zero)")
    max: int = Field(default=3, ge=1, le=100, description="Most replicas")

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.min > self.max:
            raise ValueError(f"replicas.min ({self.min}) is more than replicas.max ({self.max})")
        return self


class Autoscaling(SpecModel):
    metric: Literal["concurrency", "rps", "cpu", "memory"] = Field(
        default="concurrency", description="What the autoscaler watches"
    )
    target: int = Field(default=10, ge=1, description="Target value per replica (requests, or % utilisation)")


class Canary(SpecModel):
    """A new version takes ``percent`` of traffic first; the analysis decides whether it is promoted."""

    percent: int = Field(ge=1, le=99, description="Share of requests the new version gets during the canary")
    requests: int = Field(
        default=100, ge=10, le=10_000, description="Requests the canary must answer before the analysis decides"
    )
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Highest share of failed canary requests accepted"
    )
    max_latency_ratio: float = Field(
        default=1.5, gt=0, description="Highest canary p95 latency accepted, as a multiple of the stable one's"
    )
    max_latency_increase_ms: float = Field(
        default=10.0,
        ge=0,
        allow_inf_nan=False,
        description="A p95 above the ratio is a regression only if it is also this many milliseconds slower",
    )


class ChampionDelta(SpecModel):
    metric: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$", description="A metric both runs logged")
    by: float = Field(ge=0, description="How much worse than the current version's value is still accepted")
    higher_is_better: bool = Field(default=True, description="False for losses (log_loss, rmse)")


class Gates(SpecModel):
    """What a version must show before an alias moves to it; each failure is named."""

    metrics: list[str] = Field(
        default_factory=list, description="Thresholds on the training run's metrics, e.g. 'roc_auc >= 0.85'"
    )
    no_worse_than_current: ChampionDelta | None = Field(
        default=None, description="The new version may trail the version the alias serves now by at most 'by'"
    )
    data_checks: list[str] = Field(
        default_factory=list, description="DataChecks (names in features/<team>/checks) the run must have passed"
    )
    evaluation_dataset: str | None = Field(
        default=None, description="A dataset the run must have logged as its evaluation input"
    )

    @field_validator("metrics")
    @classmethod
    def _metric_gates(cls, value: list[str]) -> list[str]:
        for gate in value:
            if not METRIC_GATE.match(gate):
                raise ValueError(f"'{gate}' is not '<metric> >=|<=|>|< <number>', e.g. 'roc_auc >= 0.85'")
        return value


class Serve(SpecModel):
    """What one environment serves: the alias, and in cloud environments the version git says it points at."""

    alias: str = Field(pattern=ALIAS_PATTERN, description="The MLflow alias this environment serves, e.g. champion")
    version: int | None = Field(
        default=None,
        ge=1,
        description="The version the alias must point at. Cloud environments move aliases only to this "
        "(a pull request changes it); without it, the newest version that passes the gates is promoted",
    )

    canary: int | None = Field(
        default=None,
        ge=1,
        description="A version tried beside 'version' on spec.canary.percent of traffic (cloud environments: "
        "KServe splits it; a later pull request promotes it to 'version' or removes it)",
    )

    @model_validator(mode="after")
    def _canary_beside_a_version(self) -> Serve:
        if self.canary is not None and self.version is None:
            raise ValueError("canary needs version: the version that keeps the rest of the traffic")
        if self.canary is not None and self.canary == self.version:
            raise ValueError(f"canary and version are both {self.canary}; a canary is a different version")
        return self

    @field_validator("alias")
    @classmethod
    def _named(cls, value: str) -> str:
        if re.fullmatch(r"v[0-9]+", value):
            raise ValueError(f"'{value}' is reserved by MLflow for version numbers; name the alias")
        return value


class Smoke(SpecModel):
    """The request ``shipyard up`` sends once the deployment serves: features by key, then a prediction."""

    feature_service: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="The team's Feast FeatureService the model reads"
    )
    entity: dict[str, int | str] = Field(
        min_length=1, description="The entity key to look up in the online store, e.g. {user_id: 1000}"
    )
    request: dict[str, int | float | str | bool] = Field(
        default_factory=dict, description="What the caller sends beside the stored features, e.g. {amount: 42.5}"
    )


class ModelDeploymentSpec(SpecModel):
    registered_model: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="The MLflow registered model to serve"
    )
    serve: dict[str, Serve] = Field(
        min_length=1,
        description="Per environment (local, dev, staging, prod): the alias it serves, e.g. dev: {alias: challenger}",
    )
    runtime: Literal["mlflow", "sklearn", "xgboost", "custom"] = Field(
        default="mlflow", description="The KServe model format (custom: your own image)"
    )
    image: str | None = Field(default=None, description="The serving image; required for runtime: custom only")
    protocol: Literal["v1", "v2"] = Field(default="v2", description="KServe inference protocol")
    mode: Literal["Serverless", "RawDeployment", "Standard"] = Field(
        default="Serverless", description="KServe deployment mode (Standard is RawDeployment's newer name)"
    )
    resources: Resources = Field(default_factory=Resources)
    replicas: Replicas = Field(default_factory=Replicas)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    canary: Canary | None = None
    gates: Gates = Field(default_factory=Gates)
    smoke: Smoke | None = Field(
        default=None, description="Without it, `shipyard up` sends the version's logged input example"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelDeploymentSpec:
        if self.runtime == "custom" and not self.image:
            raise ValueError("runtime 'custom' needs an image")
        if self.runtime != "custom" and self.image:
            raise ValueError(f"image is only for runtime 'custom'; KServe picks the {self.runtime} server")
        if self.replicas.min == 0 and self.mode != "Serverless":
            raise ValueError("replicas.min 0 (scale to zero) needs mode Serverless")
        for environment, serve in self.serve.items():
            if serve.canary is not None and self.canary is None:
                raise ValueError(f"serve.{environment}.canary needs spec.canary (its percent and limits)")
            if serve.canary is not None and environment == "local":
                raise ValueError("serve.local.canary: the local target runs a canary itself when a version is promoted")
        return self
