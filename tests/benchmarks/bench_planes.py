"""Features and pipelines planes: wall time of each step for the example team, and plan time as a repo grows.

Run with `make bench`; the figures go into the README. Steps run as fresh CLI
processes, so each includes interpreter start-up and the worker's imports (Feast,
Great Expectations, KFP): what a user waits for.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPYARD = str(Path(sys.executable).parent / "shipyard")
sys.path.insert(0, str(REPO / "tests"))
from conftest import commit, example_repo, git, team_yaml  # noqa: E402
from shipyard.planes.models.serving.local import deployments  # noqa: E402
from shipyard.sdk.planes import local_state_dir  # noqa: E402

VIEW = """
{name}_source = FileSource(name="{name}", path=f"{{OFFLINE}}/{name}.parquet", timestamp_field="event_timestamp")
{name} = FeatureView(
    name="{name}", entities=[user], ttl=timedelta(days=1), source={name}_source,
    schema=[Field(name="user_id", dtype=Int64), Field(name="{name}_value", dtype=Float64)],
)
"""
PIPELINE = """
from kfp import dsl

@dsl.component(base_image="ghcr.io/shipyard-dev/runtime:0.1.0", install_kfp_package=False)
def step(x: int) -> int:
    return x + 1

@dsl.pipeline(name="p{index}")
def pipeline(x: int = 1):
    step(x=step(x=x).output)
"""
PIPELINE_SPEC = """apiVersion: shipyard.dev/v1alpha1
kind: Pipeline
metadata: {{name: p{index}, team: {team}}}
spec:
  owner: "@{team}"
  experiment: {team}
"""


def timed(root: Path, *args: str, check: bool = True) -> float:
    start = time.perf_counter()
    result = subprocess.run([SHIPYARD, "--repo", str(root), *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if check and result.returncode not in (0, 2):
        raise SystemExit(f"shipyard {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def synthetic_repo(folder: Path, teams: int, views: int, pipelines: int) -> Path:
    root = folder / f"repo-{teams}"
    shutil.copytree(REPO / "features/stores", root / "features/stores")
    for t in range(teams):
        team = f"team-{t}"
        (root / "platform/teams").mkdir(parents=True, exist_ok=True)
        (root / "platform/teams" / f"{team}.yaml").write_text(team_yaml(team))
        code = [
            "from datetime import timedelta\nfrom feast import Entity, FeatureView, Field, FileSource",
            "from feast.types import Float64, Int64\nfrom shipyard.sdk.featurerepo import offline_uri",
            "OFFLINE = offline_uri()",
            "user = Entity(name='user', join_keys=['user_id'])",
            *(VIEW.format(name=f"view_{v}") for v in range(views)),
        ]
        (root / "features" / team).mkdir(parents=True)
        (root / "features" / team / "features.py").write_text("\n".join(code))
        for p in range(pipelines):
            folder_p = root / "pipelines" / team / f"p{p}"
            folder_p.mkdir(parents=True)
            (folder_p / "pipeline.py").write_text(PIPELINE.format(index=p))
            (folder_p / "pipeline.yaml").write_text(PIPELINE_SPEC.format(index=p, team=team))
    git(root, "init", "-q", "-b", "main")
    commit(root, "synthetic")
    return root


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = example_repo(Path(scratch))
        try:
            steps = {
                "seed (synthetic data)": timed(root, "seed"),
                "compile (pipelines, in the worker)": timed(root, "compile"),
                "plan, first (features + GX sample + compile)": timed(root, "plan", "--target", "local"),
                "apply (Feast apply, GX gate, materialize, KFP local run, MLflow, promote, serve)": timed(
                    root, "apply", "--target", "local"
                ),
                "plan, nothing to do": timed(root, "plan", "--target", "local"),
                "apply, nothing to do": timed(root, "apply", "--target", "local"),
            }
        finally:
            for served in deployments(local_state_dir(root)):  # the model servers apply started
                served.stop()
        print("| example team `fraud`: step | wall time |\n|---|---|")
        for step, seconds in steps.items():
            print(f"| {step} | {seconds:.1f} s |")
        print("\n| synthetic repo | plan against base:HEAD (s) |\n|---|---|")
        for teams in (5, 50):
            repo = synthetic_repo(Path(scratch), teams, views=20, pipelines=5)
            seconds = timed(repo, "plan", "--target", "base:HEAD")
            print(f"| {teams} teams x (20 feature views, 5 pipelines) | {seconds:.1f} |")


if __name__ == "__main__":
    main()
