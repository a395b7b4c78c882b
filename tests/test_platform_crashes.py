"""The kill-point harness on the real local platform: an apply killed inside each plane's apply, then
resumed, ends where an uninterrupted apply ends.

One repo, one training: the first apply is killed just after it begins a change of the tenancy
plane, the next just after it begins materializing features, then training, promotion and
serving; each run resumes what the one before left. The end state is then checked against what
one uninterrupted apply leaves: nothing left to plan, one model version for the one training,
the champion alias on it, one model server for the deployment, and a further apply that changes
nothing. (Killed mid-training and mid-canary, with the duplicate-version and skipped-canary
defects, are tests/test_training_crash.py and tests/test_canary_crash.py.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import example_repo, journal_entries
from shipyard.cli import main
from shipyard.engine.local import endpoints, start_services
from shipyard.engine.registry import discover
from shipyard.planes.models.serving.local import deployments
from shipyard.sdk.killpoints import kill_at, run_to_completion
from shipyard.sdk.planes import local_state_dir

pytestmark = pytest.mark.e2e

SHIPYARD = str(Path(sys.executable).parent / "shipyard")
MODEL = "fraud-scorer"

#: One change inside each plane's apply, in the order the first apply reaches them.
KILLED_AFTER_BEGIN = (
    "tenancy/fraud/Namespace/fraud",
    "features/fraud/Materialization/user_stats",
    "pipelines/fraud/Pipeline/train",
    "models/fraud/ModelAlias/fraud-scorer",
    "models/fraud/InferenceService/fraud-scorer",
)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Path]:
    root = example_repo(tmp_path)
    start_services(discover(), root)  # the MLflow server, into this repo's process table
    assert main(["--repo", str(root), "seed"]) == 0
    yield root
    main(["--repo", str(root), "down"])


def test_an_apply_killed_inside_each_plane_resumes_to_the_uninterrupted_end_state(platform: Path) -> None:
    from mlflow import MlflowClient

    apply = [SHIPYARD, "--repo", str(platform), "apply", "--target", "local"]
    env = dict(os.environ)
    for key in KILLED_AFTER_BEGIN:
        assert kill_at(apply, f"after-begin:{key}", env=env), f"the apply finished before it began {key}"
        began = [e for e in journal_entries(platform) if e["event"] == "begin"]
        assert began[-1]["key"] == key  # it died right there, having begun nothing after it
    run_to_completion(apply, env=env)

    assert main(["--repo", str(platform), "plan", "--target", "local", "--detailed-exitcode"]) == 0
    url = endpoints(discover(), local_state_dir(platform))["mlflow"]
    client = MlflowClient(url, url)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert [v.version for v in versions] == ["1"]  # one training, one version
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"
    [served] = deployments(local_state_dir(platform))
    assert len(served.servers) == 1  # one model server for the deployment, none left over
    running = served.serving()
    assert running is not None
    assert running.version == 1
    again = run_to_completion(apply, env=env)
    assert "Applied 0 changes" in again
