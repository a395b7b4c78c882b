"""A team's feature folder is also a plain Feast repository for the local environment: Shipyard writes its
``feature_store.yaml`` (the features plane's own local config), and the real ``feast`` CLI run in the folder
plans and applies the team's objects into the registry the plane reads, with the same paths, so neither
side's apply is a change to the other. The generated file is git-ignored and moves no plan digest."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, Result, example_repo, git
from shipyard.cli.app import Session
from shipyard.planes.features import FeaturesPlane, feature_store
from shipyard.planes.features.config import repo_config
from shipyard.sdk.featurerepo import offline_uri, reading

FEAST = str(Path(sys.executable).parent / "feast")
TEAM = "features/fraud"
REGISTRY_KINDS = {"Entity", "DataSource", "FeatureView", "FeatureService", "OnlineTable"}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    root = example_repo(tmp_path)
    shutil.copy(REPO_ROOT / ".gitignore", root / ".gitignore")  # the template's, with its rule for the file
    return root


def _feast(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The feast CLI as a user runs it: in the team's folder, telemetry off, nothing of Shipyard's in the way."""
    env = dict(os.environ) | {"FEAST_USAGE": "False"}
    return subprocess.run(
        [FEAST, *args], cwd=root / TEAM, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _pending(result: Result) -> dict[str, str]:
    assert result.code in (0, 2), result.err
    return {c["key"]: c["action"] for c in json.loads(result.out)["plan"]["changes"] if c["action"] != "noop"}


def _session(root: Path) -> Session:
    session = Session()
    session.repo = root
    return session


def _prepare(root: Path) -> list[str]:
    """The features plane's part of `shipyard up` (its prepare step), without starting the local services."""
    ctx, target = _session(root).context("local")
    return list(FeaturesPlane().prepare(ctx, target))


def test_feast_plans_and_applies_the_team_folder_into_the_registry_the_plane_reads(
    shipyard: Callable[..., Result], example: Path
) -> None:
    prepared = _prepare(example)
    assert prepared[0] == f"fraud: wrote {TEAM}/feature_store.yaml (for feast in that folder)"
    assert "fraud: wrote .shipyard/local/data/fraud" in prepared

    # the explicit verb writes the same file (and leaves it alone when it already says so)
    again = shipyard("features", "init", "--team", "fraud", repo=example)
    assert again.code == 0, again.err
    assert again.out == f"fraud: {TEAM}/feature_store.yaml is up to date\n"

    # the same config as the plane's for this team locally, in Feast's own terms
    written = yaml.safe_load((example / TEAM / "feature_store.yaml").read_text())
    plane = repo_config(feature_store(_session(example).specs(), "local"), "fraud", example.resolve())
    assert {k: v for k, v in written.items() if k != "shipyard"} == {k: v for k, v in plane.items() if k != "repo_path"}
    assert written["registry"]["path"] == str(example.resolve() / ".shipyard/local/features/fraud/registry.db")
    assert written["shipyard"] == {"offline_uri": str(example.resolve() / ".shipyard/local/data/fraud")}
    assert git(example, "check-ignore", f"{TEAM}/feature_store.yaml").strip() == f"{TEAM}/feature_store.yaml"

    planned = _feast(example, "plan")
    assert planned.returncode == 0, planned.stderr
    for line in ("Created entity user", "Created feature view user_stats", "Created feature service fraud_scorer"):
        assert line in planned.stdout
    assert "Could not validate FileSource path" not in planned.stdout + planned.stderr  # it found the seeded data

    applied = _feast(example, "apply")
    assert applied.returncode == 0, applied.stderr
    assert "Created feature service fraud_scorer" in applied.stdout
    assert (example / ".shipyard/local/features/fraud/registry.db").is_file()

    # Shipyard observes what feast wrote as exactly what it plans: only its own DataChecks and window are left
    pending = _pending(shipyard("plan", "--target", "local", "--plane", "features", "--format", "json", repo=example))
    assert not {key for key in pending if key.split("/")[2] in REGISTRY_KINDS}, pending
    assert pending == {
        "features/fraud/DataCheck/transactions": "create",
        "features/fraud/DataCheck/user-stats": "create",
        "features/fraud/Materialization/user_stats": "create",
    }

    # and the other way round: after Shipyard's apply, feast finds nothing to create, delete or rebuild
    result = shipyard("apply", "--target", "local", "--plane", "features", "--yes", repo=example)
    assert result.code == 0, result.err
    after = _feast(example, "plan")
    assert after.returncode == 0, after.stderr
    assert "Created " not in after.stdout, after.stdout
    assert "Deleted " not in after.stdout, after.stdout
    assert "No changes to infrastructure" in after.stdout
    again = shipyard("plan", "--target", "local", "--plane", "features", "--format", "json", repo=example)
    assert _pending(again) == {}


def test_the_generated_file_moves_no_plan_digest(shipyard: Callable[..., Result], example: Path) -> None:
    first = shipyard("plan", "--plane", "features", repo=example)
    assert first.code == 0, first.err
    assert "computed: features/fraud" in first.err

    assert shipyard("features", "init", repo=example).code == 0
    assert (example / TEAM / "feature_store.yaml").is_file()
    second = shipyard("plan", "--plane", "features", repo=example)
    assert second.code == 0, second.err
    assert "reused 1 of 1 units; computed: none" in second.err, second.err
    assert second.out == first.out


def test_init_names_what_it_cannot_write(shipyard: Callable[..., Result], example: Path) -> None:
    unknown = shipyard("features", "init", "--team", "nobody", repo=example)
    assert unknown.code == 1
    assert "no such team: nobody" in unknown.err

    shutil.rmtree(example / "features/fraud")
    folderless = shipyard("features", "init", "--team", "fraud", repo=example)
    assert folderless.code == 1
    assert "no features folder for: fraud" in folderless.err


def test_offline_uri_answers_the_reading_then_the_written_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert offline_uri() == "data"  # neither a reading nor a config
    (tmp_path / "feature_store.yaml").write_text("project: p\nshipyard:\n  offline_uri: /somewhere/data/p\n")
    assert offline_uri() == "/somewhere/data/p"  # what feast, run in the folder, gets
    with reading(".shipyard/local/data/p"):
        assert offline_uri() == ".shipyard/local/data/p"  # the plane's reading wins
    (tmp_path / "feature_store.yaml").write_text("project: p\n")  # a hand-written Feast config
    assert offline_uri() == "data"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_feast_ui_serves_the_team_folder(shipyard: Callable[..., Result], example: Path) -> None:
    helped = _feast(example, "ui", "--help")
    assert helped.returncode == 0, helped.stderr
    # Feast's UI server imports its gRPC registry server: the features extra installs feast[grpcio] for it.

    assert shipyard("features", "init", repo=example).code == 0
    assert _feast(example, "apply").returncode == 0
    port = _free_port()
    env = dict(os.environ) | {"FEAST_USAGE": "False"}
    server = subprocess.Popen(
        [FEAST, "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=example / TEAM,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/projects-list.json", timeout=5) as answer:
                    projects = json.load(answer)
                break
            except OSError as error:
                if server.poll() is not None or time.monotonic() > deadline:
                    why = server.communicate(timeout=5)[1][-2000:]
                    raise AssertionError(f"feast ui did not answer: {why}") from error
                time.sleep(0.5)
        assert [p["id"] for p in projects["projects"]] == ["fraud"]
        url = f"http://127.0.0.1:{port}/api/v1/feature_services?project=fraud"
        with urllib.request.urlopen(url, timeout=10) as answer:
            services = json.load(answer)["featureServices"]
        assert [s["spec"]["name"] for s in services] == ["fraud_scorer"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
