"""A local apply killed while its canary runs: the next apply runs the canary again, never promotes without it.

The kill point is the one a laptop meets (Ctrl-C twice, a closed lid, an OOM kill): the apply is
SIGKILLed (its whole process group) after it began the ModelAlias change and while the router splits
traffic between the champion and the candidate. The model servers and the router run in sessions of
their own, so they outlive it: two servers stay for one deployment, and the alias has not moved.

How the alias moves is planned (``decide.rollout``, pure over the pinned registry facts and the
versions the process table shows running), so the decision is tested on its own figures first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import commit, edit, example_repo, journal_entries
from shipyard.cli import main
from shipyard.engine.local import endpoints, start_services
from shipyard.engine.registry import discover
from shipyard.planes.models.decide import CANARY, DIRECT, VERDICT, rollout
from shipyard.planes.models.serving.local import deployments
from shipyard.planes.models.spec import ModelDeploymentSpec
from shipyard.sdk import processes
from shipyard.sdk.planes import local_state_dir
from test_local_training import MODEL, _champion, _register_like_the_champion

ALIAS_KEY = "models/fraud/ModelAlias/fraud-scorer"
CANARY_DEADLINE_S = 180.0
SHIPYARD = (sys.executable, "-c", "import sys; from shipyard.cli import main; sys.exit(main())")


def _facts(alias: int | None, serving: list[int], canary_passed: int | None = None) -> dict[str, Any]:
    """A deployment's pinned facts with version 4 newest; ``canary_passed``: the version 4 passed a canary beside."""
    versions = {str(v): {"canaryPassed": canary_passed if v == 4 else None} for v in (3, 4)}
    return {"alias": alias, "newest": 4, "versions": versions, "serving": serving}


WITH_CANARY = ModelDeploymentSpec.model_validate(
    {"registeredModel": MODEL, "serve": {"local": {"alias": "champion"}}, "canary": {"percent": 10}}
)


@pytest.mark.parametrize(
    ("facts", "version", "expected"),
    [
        (_facts(3, [3]), 4, CANARY),  # the ordinary canary
        (_facts(3, [3, 4]), 4, CANARY),  # one an apply was killed in: run again, never skipped
        (_facts(3, [4], canary_passed=3), 4, VERDICT),  # killed between the verdict and the move
        (_facts(3, [3, 4], canary_passed=3), 4, CANARY),  # the champion still serves: a fresh verdict
        (_facts(3, [4], canary_passed=2), 4, DIRECT),  # a verdict beside another version is none
        (_facts(3, []), 4, DIRECT),  # nothing serves: nothing to compare with
        (_facts(None, []), 4, DIRECT),  # the first version
        (_facts(4, [4]), 4, None),  # the alias stays
        ({"alias": 3, "newest": 4, "versions": {}}, 4, None),  # a cloud target's facts: its canary is in git
        (None, 4, None),  # planned from git alone
    ],
)
def test_how_the_alias_moves_is_planned_from_what_serves(
    facts: dict | None, version: int, expected: str | None
) -> None:
    assert rollout(WITH_CANARY, facts, version) == expected


def test_without_a_canary_the_alias_moves_at_once() -> None:
    plain = WITH_CANARY.model_copy(update={"canary": None})
    assert rollout(plain, _facts(3, [3]), 4) == DIRECT


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The example repo applied locally once: a trained version serving as @champion; the MLflow URL."""
    root = example_repo(tmp_path_factory.mktemp("canary-crash"))
    # The kill is what this tests, not the latency verdict on a busy 2-core host (test_canary_analysis.py).
    edit(root, "models/fraud/fraud-scorer.yaml", "maxLatencyRatio: 1.5", "maxLatencyRatio: 4.0")
    commit(root, "a latency limit for a busy test host")
    try:
        start_services(discover(), root)
        assert main(["--repo", str(root), "seed"]) == 0
        assert main(["--repo", str(root), "apply", "--target", "local"]) == 0
        yield root, endpoints(discover(), local_state_dir(root))["mlflow"]
    finally:
        main(["--repo", str(root), "down"])  # no server outlives the module, even after a failure


def _begun(root: Path, key: str, since: float) -> bool:
    """Whether an apply began ``key`` since ``since`` (a time.time())."""
    return any(e["event"] == "begin" and e.get("key") == key and e["at"] >= since for e in journal_entries(root))


def _routes(root: Path) -> dict[str, Any]:
    [served] = deployments(local_state_dir(root))
    return served.admin("/-/stats")


def _servers(root: Path) -> list[processes.Process]:
    """The deployment's model servers in the process table that still run."""
    return [
        p
        for p in processes.table(local_state_dir(root))
        if p.labels.get("role") == "server" and p.labels.get("deployment") == "fraud/fraud-scorer"
    ]


@pytest.mark.e2e
def test_an_apply_killed_during_its_canary_runs_the_canary_again(baseline: tuple[Path, str]) -> None:
    from mlflow import MlflowClient

    root, mlflow_server = baseline
    champion = _champion(mlflow_server)
    candidate = _register_like_the_champion(mlflow_server)
    since = time.time()

    child = subprocess.Popen(
        [*SHIPYARD, "--repo", str(root), "apply", "--target", "local"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # In the canary: the alias change began, and the router splits traffic between champion and candidate.
        deadline = time.monotonic() + CANARY_DEADLINE_S
        while not (_begun(root, ALIAS_KEY, since) and len(_routes(root)["backends"]) == 2):
            assert child.poll() is None, f"the apply ended (exit {child.returncode}) before its canary was seen"
            assert time.monotonic() < deadline, "no canary seen in time"
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()

    # What the crash left: the alias where it was, the champion and the candidate both running.
    assert _champion(mlflow_server) == champion
    assert sorted(int(p.labels["version"]) for p in _servers(root) if processes.alive(p)) == [champion, candidate]

    assert main(["--repo", str(root), "apply", "--target", "local"]) == 0

    assert _champion(mlflow_server) == candidate
    tags = MlflowClient(mlflow_server, mlflow_server).get_model_version(MODEL, str(candidate)).tags
    assert tags["shipyard.champion.why"] == "shipyard apply after a canary", tags  # never promoted without one
    assert tags["shipyard.champion.previous"] == str(champion)
    assert tags["shipyard.champion.canary_passed"] == str(champion)  # the verdict, recorded before the move
    # One server for the deployment, the candidate's, taking all traffic; nothing left in the table.
    [server] = _servers(root)
    assert processes.alive(server)
    assert int(server.labels["version"]) == candidate
    [served] = deployments(local_state_dir(root))
    running = served.serving()
    assert running is not None
    assert running.version == candidate
    assert [b["url"] for b in _routes(root)["backends"]] == [server.url]
    # Settled: nothing more to do.
    assert main(["--repo", str(root), "plan", "--target", "local", "--detailed-exitcode"]) == 0
