"""The ``Team`` kind: a tenant of the platform, with owners, quota and budget."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema

from shipyard.sdk.kinds import NAME_PATTERN, SpecModel

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


class Budget(SpecModel):
    monthly_usd: float = Field(ge=0, description="Monthly spend the team is allowed, in US dollars")


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
