"""The ``Pipeline`` kind: a team's KFP v2 pipeline, its parameters, schedule and GPU needs."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from shipyard.sdk.kinds import NAME_PATTERN, SpecModel
from shipyard.sdk.platform import Owner

# Five cron fields, each *, a number, a range, a list or a step.
_CRON_FIELD = r"(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*"
CRON_PATTERN = rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$"
#: Each cron field's name and the values it allows, in order.
CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7))
PARAMETER_PATTERN = r"^[a-z_][a-z0-9_]*$"
#: Parameters the platform fills in for the target; a spec cannot set them.
PLATFORM_PARAMETERS = frozenset(
    {
        "feature_store",
        "offline_uri",
        "data_checks",
        "mlflow_tracking_uri",
        "mlflow_artifact_root",
        "experiment",
        "registered_model",
    }
)


class Schedule(SpecModel):
    cron: str = Field(pattern=CRON_PATTERN, description="Five-field cron (minute hour day month weekday), in UTC")
    paused: bool = Field(default=False, description="Keep the recurring run but do not start new runs")

    @field_validator("cron")
    @classmethod
    def _cron_in_range(cls, value: str) -> str:
        # the pattern has checked the shape; what it cannot check is each field's range
        for text, (field, low, high) in zip(value.split(" "), CRON_FIELDS, strict=True):
            for part in text.split(","):
                span, _, step = part.partition("/")
                if step and int(step) == 0:
                    raise ValueError(f"a step of at least 1 in the {field} field, not '{part}'")
                if span == "*":
                    continue
                first, _, last = span.partition("-")
                for number in (first, last) if last else (first,):
                    if not low <= int(number) <= high:
                        raise ValueError(f"the {field} field within {low}-{high}: {number} is out of range")
                if last and int(first) > int(last):
                    raise ValueError(f"a range from low to high in the {field} field: write {last}-{first}, not {span}")
        return value


class GpuTask(SpecModel):
    """GPUs for one task: the platform adds the accelerator limit, the GPU pool toleration and node selector."""

    task: str = Field(pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$", description="The task's name in the pipeline")
    count: int = Field(default=1, ge=1, le=16, description="GPUs the task needs")
    pool: str = Field(pattern=NAME_PATTERN, description="The GPU node pool to run on (infra node pool name)")
    accelerator: str = Field(default="nvidia.com/gpu", description="The accelerator resource type")


class PipelineSpec(SpecModel):
    source: str = Field(
        default="pipeline.py",
        pattern=r"^[A-Za-z0-9_-]+\.py$",
        description="The Python file beside this spec that defines the pipeline",
    )
    function: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The @dsl.pipeline function; optional when the file defines exactly one",
    )
    owner: Owner
    experiment: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="MLflow/KFP experiment name")
    registered_model: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="MLflow registered model the run produces"
    )
    schedule: Schedule | None = None
    parameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Values for the pipeline function's parameters"
    )
    gpu: list[GpuTask] = Field(default_factory=list, description="Tasks that need GPUs")
    compiled: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+\.ya?ml$",
        description="A committed compiled IR file beside this spec, kept equal to a fresh compile",
    )

    def model_name(self, name: str, team: str) -> str:
        """The MLflow registered model this pipeline's runs register."""
        return self.registered_model or f"{team}-{name}"

    @field_validator("parameters")
    @classmethod
    def _team_parameters(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if name in PLATFORM_PARAMETERS:
                raise ValueError(f"'{name}' is filled in by the platform for each target; remove it")
            if not re.match(PARAMETER_PATTERN, name):
                raise ValueError(f"'{name}' is not a Python parameter name")
        return value
