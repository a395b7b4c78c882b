"""The smoke request ``shipyard up`` sends each served model: its features from the online store, then a prediction.

With ``spec.smoke``, the entity's features come from the team's online store by key (as a
serving-time caller would read them, through the SDK's ``OnlineFeatures`` service), the
request fields are added, and the row goes to the deployment's router over HTTP. Without
it, the version's logged input example is sent.
"""

from __future__ import annotations

from typing import Any

from shipyard.planes.models.serving import probe
from shipyard.planes.models.serving.local import LocalServing
from shipyard.sdk import DesiredContext, SmokeResult, Spec, Target, UserError
from shipyard.sdk.services import OnlineFeatures


def smoke(ctx: DesiredContext, target: Target, spec: Spec) -> SmokeResult:
    """Send one request through the deployment's router; every failure is reported, not raised."""
    assert spec.team is not None  # a ModelDeployment always names its team
    label = f"{spec.team}/{spec.name}"
    serving = LocalServing(target.state_dir, spec.team, spec.name)
    server = serving.serving()
    if server is None or serving.url is None:
        return SmokeResult(label, error="not serving: no model version is running (see the apply output above)")
    alias = spec.spec.serve["local"].alias
    endpoints = (f"{serving.url}/v1/models/{spec.name}:predict", f"{serving.url}/v2/models/{spec.name}/infer")
    try:
        rows, as_of = _rows(ctx, target, spec)
        path, body = probe.inference_request(rows, spec.spec.protocol, spec.name)
        prediction = _predict(serving.url + path, body)
    except UserError as error:
        return SmokeResult(label, serving.url, server.version, alias, error=error.message, endpoints=endpoints)
    return SmokeResult(label, serving.url, server.version, alias, as_of, prediction, endpoints=endpoints)


def _rows(ctx: DesiredContext, target: Target, spec: Spec) -> tuple[Any, str | None]:
    """The DataFrame to score, and the event time of the stored features it holds (None without the store)."""
    import pandas as pd

    smoke_spec = spec.spec.smoke
    if smoke_spec is None:
        return _logged_example(ctx, target, spec), None
    assert spec.team is not None
    features = ctx.provider(OnlineFeatures)
    from shipyard.planes.models import feature_team

    team = feature_team(ctx.specs, spec)  # the deployment's team, or the one exporting the service
    found = features.online_features(ctx, target, team, smoke_spec.feature_service, dict(smoke_spec.entity))
    missing = sorted(name for name, value in found["features"].items() if value is None)
    if missing:
        key = ", ".join(f"{k}={v}" for k, v in smoke_spec.entity.items())
        raise UserError(
            f"the online store has no fresh value of {', '.join(missing)} for {key}",
            hint="materialize the features (shipyard apply) or pick an entity with recent data",
        )
    return pd.DataFrame([found["features"] | dict(smoke_spec.request)]), found["as_of"]


def _logged_example(ctx: DesiredContext, target: Target, spec: Spec) -> Any:
    from shipyard.planes.models import local_registry

    registry = local_registry(ctx.specs, target)
    model = spec.spec.registered_model
    version = registry.alias(model, spec.spec.serve["local"].alias)
    if version is None:
        raise UserError(f"{model} has no @{spec.spec.serve['local'].alias} version yet")
    return probe.logged_example(registry.uri, registry.storage_uri(model, version), spec.name)


def _predict(url: str, body: dict[str, Any]) -> Any:
    import httpx

    try:
        answer = httpx.post(url, json=body, timeout=30)
    except httpx.HTTPError as error:
        raise UserError(f"no answer from {url}: {error}") from error
    if answer.status_code != 200:
        raise UserError(f"{url} answered {answer.status_code}: {answer.text[:300]}")
    found = answer.json()
    if "predictions" in found:  # V1
        return found["predictions"][0]
    return found["outputs"][0]["data"][0]  # V2: the first output tensor, first row
