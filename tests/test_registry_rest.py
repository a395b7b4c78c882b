"""The models plane reads a tracking server's registry over MLflow's REST API, without importing mlflow.

Against a real MLflow server (the command line ``shipyard up`` runs): every fact a plan pins
reads the same over REST as through ``MlflowClient``, searches follow their pages to the end,
the writes promotion makes are what MLflow then reads, and an absent server, model version or
endpoint is a clear error.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.mlflow_server import mlflow_server
from shipyard.planes.models import registry_rest
from shipyard.planes.models.registry import REJECTED_TAG, ClientStore, ModelRegistry, RestStore
from shipyard.sdk import TargetUnavailable, UserError
from test_models import MODEL, register

OTHER_MODELS = ("churn", "ranker")


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server holding two versions of MODEL (one trained with Shipyard's provenance, one by hand, one of them
    logging a metric of 0.0), its @champion alias on version 1, and two models without versions."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    with mlflow_server(folder) as url:
        assert register(url, folder, roc_auc=0.9, log_loss=0.0) == 1
        assert register(url, folder, roc_auc=0.8, by_hand=True) == 2
        client = MlflowClient(url, url)
        client.set_registered_model_alias(MODEL, "champion", "1")
        for name in OTHER_MODELS:
            client.create_registered_model(name)
        yield url


def facts(registry: ModelRegistry) -> dict[str, object]:
    """Everything the models plane reads from a registry to pin a plan (and to promote or roll back)."""
    return {
        "models": registry.models(),
        "versions": registry.versions(MODEL),
        "alias": registry.alias(MODEL, "champion"),
        "no such alias": registry.alias(MODEL, "nope"),
        "no such model": registry.alias("nobody-registered-this", "champion"),
        "candidates": [registry.candidate(MODEL, v) for v in (1, 2)],
        "storage": [registry.storage_uri(MODEL, v) for v in (1, 2)],
        "previous": registry.previous(MODEL, "champion"),
        "rejected": registry.rejected(MODEL, 2),
    }


def test_rest_reads_what_mlflow_client_reads(tracking: str) -> None:
    over_rest = ModelRegistry(tracking, provenance=True)
    assert isinstance(over_rest.store, RestStore)
    through_mlflow = ModelRegistry(tracking, provenance=True)
    through_mlflow.store = ClientStore(tracking)

    read = facts(over_rest)

    assert read == facts(through_mlflow)
    first, by_hand = read["candidates"]  # type: ignore[misc]
    assert first.metrics["log_loss"] == 0.0
    assert first.metrics["roc_auc"] == 0.9
    assert first.data_checks == {"fraud/transactions", "fraud/user-stats"}
    assert first.datasets == {"fraud-holdout"}
    assert first.provenance  # only a pipeline run Shipyard applied carries it
    assert not by_hand.provenance
    assert read["models"] == sorted([MODEL, *OTHER_MODELS])
    assert (read["versions"], read["alias"], read["no such alias"], read["no such model"]) == ([2, 1], 1, None, None)


def test_searches_read_every_page(tracking: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_rest, "PAGE", 1)  # one result a page: three models, two versions
    registry = ModelRegistry(tracking)

    assert registry.models() == sorted([MODEL, *OTHER_MODELS])
    assert registry.versions(MODEL) == [2, 1]


def test_promotion_writes_over_rest_are_what_mlflow_reads(tracking: str) -> None:
    from mlflow import MlflowClient

    registry, client = ModelRegistry(tracking), MlflowClient(tracking, tracking)

    assert registry.move(MODEL, "staging-test", 2, why="a test") is None
    registry.reject(MODEL, 2, "a test rejects it")
    assert client.get_model_version_by_alias(MODEL, "staging-test").version == "2"
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["shipyard.staging-test.why"] == "a test"
    assert tags[REJECTED_TAG] == "a test rejects it"
    assert registry.versions(MODEL, rejected=False) == [1]

    registry.clear_rejection(MODEL, 2, "fixed by hand")

    assert REJECTED_TAG not in client.get_model_version(MODEL, "2").tags
    assert registry.versions(MODEL, rejected=False) == [2, 1]


def test_reading_the_registry_imports_neither_mlflow_nor_feast(tracking: str) -> None:
    """MLflow's client loads every installed request-header plugin on its first call, Feast's among them:
    seconds a plan spent importing libraries it never used."""
    probe = f"""
import json, sys
from shipyard.planes.models.registry import ModelRegistry
registry = ModelRegistry({tracking!r}, provenance=True)
registry.candidate({MODEL!r}, registry.alias({MODEL!r}, "champion"))
registry.storage_uri({MODEL!r}, 1)
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert not loaded & {"mlflow", "feast", "pandas", "great_expectations"}, loaded


def test_an_absent_server_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"

    with pytest.raises(TargetUnavailable, match=f"the MLflow tracking server at {url} did not answer"):
        ModelRegistry(url).models()


def test_a_version_that_does_not_exist_is_named(tracking: str) -> None:
    with pytest.raises(UserError, match=f"MLflow at {tracking} has no name {MODEL}, version 99") as raised:
        ModelRegistry(tracking).candidate(MODEL, 99)
    assert not isinstance(raised.value, TargetUnavailable)


def test_something_other_than_mlflow_is_named_so(tracking: str) -> None:
    registry = ModelRegistry(f"{tracking}/not-mlflow")

    with pytest.raises(TargetUnavailable, match=r"answered 404") as raised:
        registry.models()
    assert "an MLflow tracking server?" in raised.value.hint


def test_credentials_are_mlflows_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """As MLflow's client sends them: basic auth when a user and password are set, else a bearer token; a server
    behind an auth plugin (which only MLflow can load) is read through MLflow's client."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")
    assert RestStore("https://mlflow.example").headers["Authorization"] == "Bearer t0ken"

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ci")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    assert RestStore("https://mlflow.example").headers["Authorization"] == "Basic Y2k6czNjcmV0"  # ci:s3cret

    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "some-plugin")
    assert isinstance(ModelRegistry("https://mlflow.example").store, ClientStore)
