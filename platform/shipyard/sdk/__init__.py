"""Shipyard plugin SDK: everything a plugin imports comes from here.

A minimal plugin module, registered under the ``shipyard.plugins`` entry point::

    from shipyard.sdk import Kind, SpecModel, hookimpl

    class VectorIndexSpec(SpecModel):
        dimensions: int

    @hookimpl
    def shipyard_kinds() -> list[Kind]:
        return [Kind("VectorIndex", VectorIndexSpec, globs=("vector-indexes/**/*.yaml",))]
"""

from shipyard.sdk.cache import Cache, Unit
from shipyard.sdk.errors import (
    ApplyError,
    ChangesFailed,
    InternalError,
    LockHeld,
    MissingExtra,
    PluginError,
    PolicyViolation,
    ShipyardError,
    SpecError,
    StalePlanError,
    TargetUnavailable,
    TransientError,
    UserError,
)
from shipyard.sdk.hookspecs import hookimpl
from shipyard.sdk.kinds import API_VERSION, Kind, Spec, SpecModel, SpecSet
from shipyard.sdk.model import (
    Action,
    Change,
    Diagnostic,
    FieldDiff,
    FieldOp,
    FieldPath,
    Resource,
    Severity,
    SourcePosition,
    content_digest,
    resource_key,
)
from shipyard.sdk.planes import (
    Applier,
    DesiredContext,
    Facts,
    LocalService,
    Plane,
    Policy,
    PolicyContext,
    SmokeResult,
    Target,
    rule,
)

__all__ = [
    "API_VERSION",
    "Action",
    "Applier",
    "ApplyError",
    "Cache",
    "Change",
    "ChangesFailed",
    "DesiredContext",
    "Diagnostic",
    "Facts",
    "FieldDiff",
    "FieldOp",
    "FieldPath",
    "InternalError",
    "Kind",
    "LocalService",
    "LockHeld",
    "MissingExtra",
    "Plane",
    "PluginError",
    "Policy",
    "PolicyContext",
    "PolicyViolation",
    "Resource",
    "Severity",
    "ShipyardError",
    "SmokeResult",
    "SourcePosition",
    "Spec",
    "SpecError",
    "SpecModel",
    "SpecSet",
    "StalePlanError",
    "Target",
    "TargetUnavailable",
    "TransientError",
    "Unit",
    "UserError",
    "content_digest",
    "hookimpl",
    "resource_key",
    "rule",
]
