"""Services one plane offers another, declared here so that no plane imports another.

A plane offers a service by implementing its protocol; a plane that needs it asks its
context, ``ctx.provider(OnlineFeatures)``, and gets whichever installed plane offers it
(the built-in features plane, or a third-party plane that replaces it).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from shipyard.sdk.planes import DesiredContext, Target


@runtime_checkable
class TrainingInputs(Protocol):
    """Where a team's training run finds its data, as the platform's pipeline parameters."""

    def training_inputs(self, ctx: DesiredContext, target: Target, team: str) -> dict[str, str]:
        """``feature_store`` (Feast repo config, JSON), ``offline_uri`` (the team's offline data) and
        ``data_checks`` (JSON: each check's name, data path and expectations) for ``team`` on ``target``."""
        ...


@runtime_checkable
class OnlineFeatures(Protocol):
    """Feature values as a served model reads them at request time."""

    def online_features(
        self, ctx: DesiredContext, target: Target, team: str, service: str, entity: dict[str, Any]
    ) -> dict[str, Any]:
        """One entity's features from ``team``'s online store through a feature service:
        ``{"features": {name: value or None}, "as_of": newest event time (ISO) or None}``."""
        ...
