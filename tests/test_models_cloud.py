"""The models plane against a cloud environment: InferenceServices by server-side apply to a Kubernetes API on
loopback, aliases through a real MLflow tracking server's REST API, and drift when someone moves an alias by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import edit, example_repo
from servers.kubernetes_api import State, kubeconfig, kubernetes_api
from servers.mlflow_server import mlflow_server
from test_models import MODEL, SPEC, alias_of, pending, plan_json, register

ENV = "staging"  # the example pins staging to version 1 of fraud-scorer
SERVICE = "models/fraud/InferenceService/fraud-scorer"
ALIAS = "models/fraud/ModelAlias/fraud-scorer"
SERVED = ("inferenceservices", "fraud", "fraud-scorer")  # the test server's key: (plural, namespace, name)


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cloud_state: str) -> Iterator[tuple[Path, str, State]]:
    """The example repo whose staging environment is a loopback MLflow server and Kubernetes API (state in moto)."""
    root = example_repo(tmp_path)
    (tmp_path / "mlflow").mkdir()
    with mlflow_server(tmp_path / "mlflow") as tracking, kubernetes_api() as (cluster, api):
        (tmp_path / "kubeconfig").write_text(kubeconfig(cluster, f"shipyard-{ENV}"))
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
        edit(root, f"platform/environments/{ENV}.yaml", f"https://mlflow.{ENV}.shipyard.internal", tracking)
        yield root, tracking, api


def _apply(shipyard, root: Path) -> None:
    result = shipyard("apply", "-t", ENV, "--plane", "models", "--yes", repo=root)
    assert result.code == 0, result.err


def test_staging_is_applied_server_side_converges_and_shows_drift(staging, tmp_path: Path, shipyard) -> None:
    from mlflow import MlflowClient

    root, tracking, api = staging
    assert register(tracking, tmp_path, roc_auc=0.82) == 1

    code, data = plan_json(shipyard, root, "-t", ENV)
    assert code == 0
    changes = pending(data)
    assert {k: c["action"] for k, c in changes.items()} == {ALIAS: "update", SERVICE: "create"}  # alias: unset → 1
    assert changes[ALIAS]["desired"]["body"]["version"] == 1
    _apply(shipyard, root)

    [(_, path, content_type)] = [call for call in api.calls if call[0] == "PATCH"]
    assert content_type == "application/apply-patch+yaml"
    assert "fieldManager=shipyard" in path
    assert "force=true" in path
    stored = api.objects[SERVED]
    assert stored["spec"]["predictor"]["model"]["storageUri"] == MlflowClient(
        tracking, tracking
    ).get_model_version_download_uri(MODEL, "1")
    assert alias_of(tracking) == 1
    tags = MlflowClient(tracking, tracking).get_model_version(MODEL, "1").tags
    assert tags["shipyard.champion.why"] == f"shipyard apply to {ENV}"

    # KServe's defaults and status are not ours: nothing to change, and the status is there to read.
    code, data = plan_json(shipyard, root, "-t", ENV)
    assert pending(data) == {}
    [service] = [c for c in data["plan"]["changes"] if c["key"] == SERVICE]
    assert service["observed"]["body"]["status"] == {
        "ready": True,
        "url": "http://fraud-scorer.fraud.svc.cluster.local",
        "traffic": {"fraud-scorer-predictor-00001": 100},
    }

    # Someone moves @champion by hand: the plan shows it, and apply puts git's version back.
    assert register(tracking, tmp_path, roc_auc=0.84) == 2
    MlflowClient(tracking, tracking).set_registered_model_alias(MODEL, "champion", "2")
    code, data = plan_json(shipyard, root, "-t", ENV)
    [drift] = pending(data)[ALIAS]["diffs"]
    assert (drift["path"], drift["before"], drift["after"]) == (["version"], 2, 1)
    _apply(shipyard, root)
    assert alias_of(tracking) == 1

    # A reviewed spec change is one field, applied server-side.
    edit(root, SPEC, "    max: 4", "    max: 6")
    code, data = plan_json(shipyard, root, "-t", ENV)
    [change] = pending(data).values()
    assert [(d["path"], d["before"], d["after"]) for d in change["diffs"]] == [
        (["spec", "predictor", "maxReplicas"], 4, 6)
    ]
    _apply(shipyard, root)
    assert api.objects[SERVED]["spec"]["predictor"]["maxReplicas"] == 6

    # A canary declared in git: Serverless mode lets KServe split with canaryTrafficPercent ...
    edit(root, SPEC, "staging: {alias: champion, version: 1}", "staging: {alias: champion, version: 1, canary: 2}")
    code, data = plan_json(shipyard, root, "-t", ENV)
    fields = {".".join(map(str, d["path"])): d["after"] for d in pending(data)[SERVICE]["diffs"]}
    assert fields["spec.predictor.canaryTrafficPercent"] == 10
    assert fields["metadata.labels.shipyard.dev/model-version"] == "2"
    assert set(pending(data)) == {SERVICE}  # the alias stays on version 1 while the canary runs
    _apply(shipyard, root)
    assert api.objects[SERVED]["spec"]["predictor"]["canaryTrafficPercent"] == 10

    # ... Standard mode has no such field: a canary InferenceService and a weighted HTTPRoute.
    edit(root, SPEC, "  mode: Serverless", "  mode: Standard")
    code, data = plan_json(shipyard, root, "-t", ENV)
    actions = {k: c["action"] for k, c in pending(data).items()}
    canary, route = "models/fraud/InferenceService/fraud-scorer-canary", "models/fraud/HTTPRoute/fraud-scorer-split"
    assert actions == {SERVICE: "update", canary: "create", route: "create"}
    _apply(shipyard, root)
    assert "canaryTrafficPercent" not in api.objects[SERVED]["spec"]["predictor"]
    weights = api.objects[("httproutes", "fraud", "fraud-scorer-split")]["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in weights] == [
        ("fraud-scorer-predictor", 90),
        ("fraud-scorer-canary-predictor", 10),
    ]
    code, data = plan_json(shipyard, root, "-t", ENV)
    assert pending(data) == {}

    # A deployment removed from the repo is deleted from the cluster; its alias stays in the registry.
    (root / SPEC).unlink()
    code, data = plan_json(shipyard, root, "-t", ENV)
    assert {k: c["action"] for k, c in pending(data).items()} == {SERVICE: "delete", canary: "delete", route: "delete"}
    _apply(shipyard, root)
    assert api.objects == {}
    assert alias_of(tracking) == 1


def test_no_credentials_for_the_context_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    from shipyard.planes.models.kubernetes import Cluster
    from shipyard.sdk import TargetUnavailable

    (tmp_path / "kubeconfig").write_text(kubeconfig("http://127.0.0.1:9", "someone-elses-cluster"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "")  # not inside a cluster either

    with pytest.raises(TargetUnavailable, match=f"no Kubernetes credentials for context shipyard-{ENV}"):
        Cluster(f"shipyard-{ENV}")


def test_an_unreachable_tracking_server_is_a_clear_error_at_once(tmp_path: Path, shipyard) -> None:
    root = example_repo(tmp_path)
    edit(root, f"platform/environments/{ENV}.yaml", f"https://mlflow.{ENV}.shipyard.internal", "http://127.0.0.1:9")

    result = shipyard("plan", "-t", ENV, "--plane", "models", repo=root)

    assert result.code == 1
    assert "the MLflow tracking server at http://127.0.0.1:9 did not answer" in result.err
    assert f"platform/environments/{ENV}.yaml" in result.err
    assert "Traceback" not in result.err
