"""The models plane: ModelDeployment specs, InferenceService rendering checked against the CRD, gates,
promotion and rollback against a real MLflow registry (SQLite, in the test's folder)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from conftest import Result, commit, edit, example_repo
from shipyard.planes.models import validation
from shipyard.planes.models.gates import Candidate, evaluate
from shipyard.planes.models.render import Serving, inference_service, standard_canary
from shipyard.planes.models.serving.local import deployments
from shipyard.planes.models.spec import ModelDeploymentSpec
from shipyard.sdk import provenance
from shipyard.sdk.planes import local_state_dir

MODEL = "fraud-scorer"
SPEC = "models/fraud/fraud-scorer.yaml"


def _spec(**changes: object) -> ModelDeploymentSpec:
    base: dict[str, object] = {"registeredModel": MODEL, "serve": {"local": {"alias": "champion"}}}
    return ModelDeploymentSpec.model_validate(base | changes)


# -- rendering and the CRD schema -----------------------------------------------------------------


KINDS_OF_DEPLOYMENT = [
    {},
    {"mode": "Standard", "autoscaling": {"metric": "cpu", "target": 70}},
    {"runtime": "sklearn", "protocol": "v1", "resources": {"gpu": 2, "gpuPool": "gpu-a10g"}},
    {"runtime": "custom", "image": "ghcr.io/acme/scorer:1.2.0"},
    {"replicas": {"min": 0, "max": 2}},
]


@pytest.mark.parametrize("changes", KINDS_OF_DEPLOYMENT)
def test_every_kind_of_deployment_renders_a_manifest_the_crd_accepts(changes: dict) -> None:
    manifest = inference_service(_spec(**changes), "scorer", "fraud", "fraud", Serving(3, "s3://b/m/artifacts"))
    assert list(validation.problems(manifest)) == []
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"


@pytest.mark.parametrize("changes", KINDS_OF_DEPLOYMENT)
@pytest.mark.parametrize("canary", [None, 10])
def test_the_manifest_is_what_kserves_own_client_models_serialize_to(changes: dict, canary: int | None) -> None:
    """Planning writes the manifest as plain data (no KServe import); KServe's models are the oracle."""
    spec = _spec(**changes)
    ours = inference_service(spec, "scorer", "fraud", "fraud-ns", Serving(3, "s3://b/m"), canary_percent=canary)
    assert ours == _with_kserve_models(spec, canary)


def _with_kserve_models(spec: ModelDeploymentSpec, canary: int | None) -> dict:
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes import client as k8s

    quantities = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    if spec.resources.gpu:
        quantities["nvidia.com/gpu"] = str(spec.resources.gpu)
    resources = k8s.V1ResourceRequirements(requests=dict(quantities), limits=dict(quantities))
    ready = "/v2/models/scorer/ready" if spec.protocol == "v2" else "/v1/models/scorer"
    probe = k8s.V1Probe(http_get=k8s.V1HTTPGetAction(path=ready, port=8080), period_seconds=10, failure_threshold=3)
    security = k8s.V1SecurityContext(
        run_as_non_root=True,
        allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )
    predictor: dict = {
        "min_replicas": spec.replicas.min,
        "max_replicas": spec.replicas.max,
        "scale_metric": spec.autoscaling.metric,
        "scale_target": spec.autoscaling.target,
        "canary_traffic_percent": canary,
    }
    if spec.runtime == "custom":
        env = [k8s.V1EnvVar(name="STORAGE_URI", value="s3://b/m")]
        container = k8s.V1Container(name="kserve-container", image=spec.image, env=env, resources=resources)
        container.readiness_probe, container.security_context = probe, security
        predictor["containers"] = [container]
    else:
        predictor["model"] = V1beta1ModelSpec(
            model_format=V1beta1ModelFormat(name=spec.runtime),
            protocol_version=spec.protocol,
            storage_uri="s3://b/m",
            resources=resources,
            readiness_probe=probe,
            security_context=security,
        )
    if spec.resources.gpu:
        taint = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        predictor["tolerations"] = [k8s.V1Toleration(**taint)]
        predictor["node_selector"] = {"shipyard.dev/pool": spec.resources.gpu_pool}
    labels = {
        "app.kubernetes.io/managed-by": "shipyard",
        "shipyard.dev/team": "fraud",
        "shipyard.dev/model": MODEL,
        "shipyard.dev/model-version": "3",
    }
    mode = "RawDeployment" if spec.mode == "Standard" else spec.mode
    service = V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=k8s.V1ObjectMeta(
            name="scorer",
            namespace="fraud-ns",
            labels=labels,
            annotations={"serving.kserve.io/deploymentMode": mode},
        ),
        spec=V1beta1InferenceServiceSpec(predictor=V1beta1PredictorSpec(**predictor)),
    )
    return k8s.ApiClient().sanitize_for_serialization(service)


def test_a_gpu_deployment_gets_the_pool_toleration_and_node_selector() -> None:
    spec = _spec(resources={"gpu": 1, "gpuPool": "gpu-a10g"})
    predictor = inference_service(spec, "scorer", "fraud", "fraud", Serving(1, "s3://x"))["spec"]["predictor"]
    assert predictor["tolerations"] == [
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Equal", "value": "true"}
    ]
    assert predictor["nodeSelector"] == {"shipyard.dev/pool": "gpu-a10g"}
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_the_canary_follows_the_deployment_mode() -> None:
    serverless = inference_service(_spec(), "scorer", "fraud", "fraud", Serving(2, "s3://x"), canary_percent=10)
    assert serverless["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert list(validation.problems(serverless)) == []

    canary, route = standard_canary(_spec(mode="Standard"), "scorer", "fraud", "fraud", Serving(2, "s3://x"), 10)
    assert "canaryTrafficPercent" not in canary["spec"]["predictor"]
    assert canary["metadata"]["name"] == "scorer-canary"
    assert list(validation.problems(canary)) == []
    weights = [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]]
    assert weights == [("scorer-predictor", 90), ("scorer-canary-predictor", 10)]


def test_schema_problems_point_back_at_the_spec_field() -> None:
    manifest = inference_service(_spec(), "scorer", "fraud", "fraud", Serving(1, "s3://x"))
    manifest["spec"]["predictor"]["minReplicas"] = "one"
    manifest["spec"]["predictor"]["model"]["resources"]["limits"]["cpu"] = {"cores": 1}
    manifest["spec"]["predictor"]["model"]["storgeUri"] = "typo"  # an API server would drop it silently

    found = dict(validation.problems(manifest))

    assert "'one' is not of type 'integer'" in found[("spec", "predictor", "minReplicas")]
    assert validation.spec_path(("spec", "predictor", "minReplicas")) == ("spec", "replicas", "min")
    assert ("spec", "predictor", "model", "resources", "limits", "cpu") in found
    assert validation.spec_path(("spec", "predictor", "model", "resources", "limits")) == ("spec", "resources")
    assert any("storgeUri" in message for message in found.values())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"runtime": "custom"}, "runtime 'custom' needs an image"),
        ({"image": "x:1"}, "image is only for runtime 'custom'"),
        ({"resources": {"gpu": 1}}, "resources.gpu needs resources.gpuPool"),
        ({"replicas": {"min": 5, "max": 2}}, "replicas.min (5) is more than replicas.max (2)"),
        ({"replicas": {"min": 0, "max": 2}, "mode": "Standard"}, "scale to zero"),
        ({"gates": {"metrics": ["roc_auc > high"]}}, "is not '<metric> >=|<=|>|< <number>'"),
        ({"serve": {"local": {"alias": "v2"}}}, "reserved by MLflow"),
        ({"serve": {"prod": {"alias": "champion", "canary": 2}}}, "canary needs version"),
        ({"serve": {"prod": {"alias": "champion", "version": 2, "canary": 2}}}, "a canary is a different version"),
        ({"serve": {"prod": {"alias": "champion", "version": 1, "canary": 2}}}, "needs spec.canary"),
        (
            {"serve": {"local": {"alias": "champion", "version": 1, "canary": 2}}, "canary": {"percent": 5}},
            "the local target runs a canary itself",
        ),
    ],
)
def test_bad_deployments_are_refused_with_the_reason(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        _spec(**changes)


# -- gates ----------------------------------------------------------------------------------------


def test_each_failing_gate_is_named() -> None:
    gates = _spec(
        gates={
            "metrics": ["roc_auc >= 0.85", "log_loss <= 0.5"],
            "noWorseThanCurrent": {"metric": "roc_auc", "by": 0.01},
            "dataChecks": ["transactions"],
            "evaluationDataset": "fraud-holdout",
        }
    ).gates
    current = Candidate(1, {"roc_auc": 0.9, "log_loss": 0.3}, frozenset({"transactions"}), frozenset({"fraud-holdout"}))
    bad = Candidate(2, {"roc_auc": 0.8}, frozenset(), frozenset())

    failures = [str(f) for f in evaluate(gates, bad, current)]

    assert failures == [
        "gate 'roc_auc >= 0.85' failed: version 2 has roc_auc = 0.8",
        "gate 'log_loss <= 0.5' failed: version 2 logged no metric 'log_loss'",
        "gate 'no worse than version 1 by more than 0.01 on roc_auc' failed: roc_auc 0.9 → 0.8",
        "gate 'data check transactions passed' failed: the run passed: none",
        "gate 'evaluated on fraud-holdout' failed: the run logged: none",
    ]
    good = Candidate(3, {"roc_auc": 0.895, "log_loss": 0.31}, frozenset({"transactions"}), frozenset({"fraud-holdout"}))
    assert evaluate(gates, good, current) == []


# -- the plane against a real MLflow registry -----------------------------------------------------


@pytest.fixture
def models_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """The example repo and the local target's own MLflow registry (SQLite in its state folder, as no
    server runs); what it served is stopped after."""
    root = example_repo(tmp_path)
    # The local target's tracking URI comes from the target, never from the caller's environment.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = local_state_dir(root) / "mlflow"
    folder.mkdir(parents=True)
    yield root, f"sqlite:///{folder / 'mlflow.db'}"
    for served in deployments(local_state_dir(root)):
        served.stop()


def register(uri: str, tmp_path: Path, roc_auc: float, log_loss: float = 0.17, *, by_hand: bool = False) -> int:
    """Log a run the way the training pipeline does (metrics, passed checks, evaluation set, and the provenance
    tags a pipeline run Shipyard applied carries) and register it; ``by_hand``: without those tags."""
    import mlflow
    import mlflow.data
    import pandas as pd
    from sklearn.dummy import DummyClassifier

    frame = pd.DataFrame({"amount": [1.0, 2.0], "is_fraud": [0, 1]})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)  # not set_tracking_uri: that would outlive the test
        if mlflow.get_experiment_by_name("fraud") is None:
            # A tracking server keeps artifacts itself; a SQLite registry needs a folder.
            artifacts = None if uri.startswith("http") else str(tmp_path / "artifacts")
            mlflow.create_experiment("fraud", artifact_location=artifacts)
        with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("fraud").experiment_id):
            mlflow.log_metrics({"roc_auc": roc_auc, "pr_auc": 0.2, "log_loss": log_loss})
            mlflow.set_tag("shipyard.data_checks", "fraud/transactions,fraud/user-stats")
            if not by_hand:
                mlflow.set_tags({tag: f"{tag} of the run" for tag in provenance.REQUIRED})
            evaluation = mlflow.data.from_pandas(frame, name="fraud-holdout", targets="is_fraud")
            mlflow.log_input(evaluation, context="evaluation")
            info = mlflow.sklearn.log_model(
                DummyClassifier().fit(frame[["amount"]], frame["is_fraud"]),
                name="model",
                registered_model_name=MODEL,
                input_example=frame[["amount"]],
                pip_requirements=["scikit-learn"],
            )
    return int(info.registered_model_version)


def plan_json(shipyard: Callable[..., Result], root: Path, *args: str) -> tuple[int, dict]:
    # --full: these tests read unchanged changes' bodies too (a plan file only counts those, per plane and scope)
    result = shipyard("plan", "--plane", "models", "--format", "json", "--full", *args, repo=root)
    return result.code, json.loads(result.out)


def pending(data: dict) -> dict[str, dict]:
    return {c["key"]: c for c in data["plan"]["changes"] if c["action"] != "noop"}


def alias_of(uri: str, alias: str = "champion") -> int:
    from mlflow import MlflowClient

    return int(MlflowClient(uri, uri).get_model_version_by_alias(MODEL, alias).version)


def test_promotion_through_gates_then_rollback(models_repo, tmp_path: Path, shipyard) -> None:
    from mlflow import MlflowClient

    root, uri = models_repo
    code, data = plan_json(shipyard, root)
    assert code == 0
    assert pending(data) == {}  # nothing trained: no version for the alias, nothing to serve yet
    [alias] = data["plan"]["changes"]
    assert (alias["key"], alias["desired"]["body"]["version"]) == ("models/fraud/ModelAlias/fraud-scorer", None)

    first = register(uri, tmp_path, roc_auc=0.82)
    code, data = plan_json(shipyard, root)
    changes = pending(data)
    assert changes["models/fraud/ModelAlias/fraud-scorer"]["desired"]["body"]["version"] == first
    pinned = data["plan"]["facts"]["models"]["deployments"]["fraud/fraud-scorer"]  # what the decision stood on
    assert (pinned["alias"], pinned["newest"]) == (None, first)
    service = changes["models/fraud/InferenceService/fraud-scorer"]["desired"]["body"]
    assert service["spec"]["predictor"]["model"]["storageUri"].endswith("/artifacts")
    assert shipyard("apply", "--plane", "models", repo=root).code == 0
    assert alias_of(uri) == first
    tags = MlflowClient(uri, uri).get_model_version(MODEL, str(first)).tags
    assert tags["shipyard.champion.why"] == "shipyard apply"

    # A worse version is held back: the plan warns with the gate named, and promote refuses it.
    worse = register(uri, tmp_path, roc_auc=0.70)
    code, data = plan_json(shipyard, root)
    assert pending(data) == {}
    [warning] = [d for d in data["diagnostics"] if d["rule"] == "models/gates"]
    assert "gate 'roc_auc >= 0.75' failed: version 2 has roc_auc = 0.7" in warning["message"]
    refused = shipyard("promote", "fraud/fraud-scorer", "--version", str(worse), repo=root)
    assert refused.code == 1
    assert "gate 'roc_auc >= 0.75' failed" in refused.err
    assert alias_of(uri) == first

    # A better one moves the alias and the served storage URI, and remembers where it came from.
    better = register(uri, tmp_path, roc_auc=0.83)
    code, data = plan_json(shipyard, root)
    changes = pending(data)
    [move] = changes["models/fraud/ModelAlias/fraud-scorer"]["diffs"]
    assert (move["path"], move["before"], move["after"]) == (["version"], first, better)
    fields = {".".join(map(str, d["path"])) for d in changes["models/fraud/InferenceService/fraud-scorer"]["diffs"]}
    assert fields == {"spec.predictor.model.storageUri", "metadata.labels.shipyard.dev/model-version"}
    assert shipyard("apply", "--plane", "models", repo=root).code == 0
    assert alias_of(uri) == better

    rolled = shipyard("rollback", "fraud/fraud-scorer", "--reason", "p95 latency doubled", repo=root)
    assert rolled.code == 0, rolled.err
    assert alias_of(uri) == first
    assert MlflowClient(uri, uri).get_model_version(MODEL, str(better)).tags["shipyard.rejected"] == (
        "p95 latency doubled"
    )
    # The rejected version is not promoted again; the newest other one still fails its gates.
    code, data = plan_json(shipyard, root)
    assert set(pending(data)) == {"models/fraud/InferenceService/fraud-scorer"}  # re-rendered to version 1


def test_cloud_aliases_move_only_by_pull_request(models_repo, shipyard) -> None:
    root, _ = models_repo
    result = shipyard("promote", "fraud/fraud-scorer", "--env", "prod", repo=root)
    assert result.code == 1
    assert "move only when a merged change is applied" in result.err
    assert "spec.serve.prod.version" in result.err


def test_a_spec_change_plans_as_an_inference_service_field_diff(models_repo, shipyard) -> None:
    root, _ = models_repo
    edit(root, SPEC, "    max: 4", "    max: 6")
    commit(root, "more replicas")

    code, data = plan_json(shipyard, root, "--target", "base:HEAD~1")

    assert code == 0
    [change] = pending(data).values()
    assert change["key"] == "models/fraud/InferenceService/fraud-scorer"
    assert [(d["path"], d["before"], d["after"]) for d in change["diffs"]] == [
        (["spec", "predictor", "maxReplicas"], 4, 6)
    ]


def test_promoting_a_rejected_version_by_hand_clears_its_rejection_with_the_reason(
    models_repo, tmp_path, shipyard
) -> None:
    from mlflow import MlflowClient

    from shipyard.planes.models.registry import CLEARED_TAG, REJECTED_TAG, ModelRegistry

    root, uri = models_repo
    first = register(uri, tmp_path, roc_auc=0.82)
    assert shipyard("promote", "fraud/fraud-scorer", "--version", str(first), repo=root).code == 0
    retried = register(uri, tmp_path, roc_auc=0.83)
    ModelRegistry(uri).reject(MODEL, retried, "canary: p95 latency 8.4 ms is 1.7x the serving version's 4.9 ms")
    _, data = plan_json(shipyard, root)
    assert "models/fraud/ModelAlias/fraud-scorer" not in pending(data)  # rejected: not a candidate

    promoted = shipyard(
        "promote", "fraud/fraud-scorer", "--version", str(retried), "--reason", "the host was busy; retried", repo=root
    )
    assert promoted.code == 0, promoted.err
    assert "candidate again (it was rejected: canary: p95 latency 8.4 ms" in promoted.out
    tags = MlflowClient(uri, uri).get_model_version(MODEL, str(retried)).tags
    assert REJECTED_TAG not in tags
    assert tags[CLEARED_TAG].startswith("the host was busy; retried (by ")
    assert "it was rejected: canary: p95 latency" in tags[CLEARED_TAG]
    assert alias_of(uri) == retried
    # The plan keeps the alias where the hand put it: the version is a candidate again, not drift to undo.
    _, data = plan_json(shipyard, root)
    assert "models/fraud/ModelAlias/fraud-scorer" not in pending(data)
    [alias] = [c for c in data["plan"]["changes"] if c["key"] == "models/fraud/ModelAlias/fraud-scorer"]
    assert alias["desired"]["body"]["version"] == retried


def test_a_version_registered_by_hand_is_never_promoted(models_repo, tmp_path, shipyard) -> None:
    from shipyard.planes.models.gates import PROVENANCE_GATE

    root, uri = models_repo
    first = register(uri, tmp_path, roc_auc=0.82)
    assert shipyard("promote", "fraud/fraud-scorer", "--version", str(first), repo=root).code == 0
    # Better figures than the champion's, by any process that can reach the registry: not a pipeline run's.
    planted = register(uri, tmp_path, roc_auc=0.99, log_loss=0.01, by_hand=True)
    code, data = plan_json(shipyard, root)
    assert code == 0
    assert "models/fraud/ModelAlias/fraud-scorer" not in pending(data)  # the alias stays on the champion
    [finding] = [d for d in data["diagnostics"] if d["rule"] == "models/gates"]
    assert f"gate '{PROVENANCE_GATE}' failed: version {planted}'s run lacks shipyard.change" in finding["message"]
    refused = shipyard("promote", "fraud/fraud-scorer", "--version", str(planted), repo=root)
    assert refused.code == 1
    assert "registered by hand, not by a pipeline run Shipyard applied" in refused.err
    assert alias_of(uri) == first


def test_a_gate_on_a_metric_no_version_logged_is_a_finding_at_its_line(models_repo, tmp_path, shipyard) -> None:
    root, uri = models_repo
    edit(root, "models/fraud/fraud-scorer.yaml", '"pr_auc >= 0.1"', '"pr_acu >= 0.1"')
    register(uri, tmp_path, roc_auc=0.82)
    code, data = plan_json(shipyard, root)
    assert code == 0  # a warning: the pipeline may start logging it in the same change
    [finding] = [d for d in data["diagnostics"] if d["rule"] == "models/gate-metric"]
    lines = (root / "models/fraud/fraud-scorer.yaml").read_text(encoding="utf-8").splitlines()
    assert finding["line"] == next(n for n, text in enumerate(lines, 1) if "pr_acu" in text)
    assert "a gate on 'pr_acu', which no version of fraud-scorer logged" in finding["message"]
    assert "log_loss, pr_auc, roc_auc" in finding["message"]
    assert finding["hint"] == "did you mean 'pr_auc'?"
