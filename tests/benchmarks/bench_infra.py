"""Infra plane: time to evaluate each stack's Pulumi program under mocks, and how it grows with pools and teams.

Run with `make bench`; the figures go into the README. Each evaluation is a fresh process
(as the plane runs it): interpreter, pulumi and pulumi_aws imports, the program, the mocks.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from conftest import team_yaml  # noqa: E402
from shipyard.planes.infra import evaluate_stacks  # noqa: E402
from shipyard.planes.infra.stack import stacks  # noqa: E402

POOL = """      - name: gpu-{index}
        instanceTypes: [g6.xlarge]
        capacity: SPOT
        ami: AL2023_x86_64_NVIDIA
        min: 0
        max: 2
"""


def synthetic(folder: Path, pools: int, teams: int) -> Path:
    """The template's infra with ``pools`` GPU pools in its dev stack and ``teams`` teams."""
    root = folder / f"infra-{pools}-{teams}"
    shutil.copytree(REPO / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    config = (REPO / "Pulumi.dev.yaml").read_text()
    extra = "".join(POOL.format(index=i) for i in range(pools))
    config = config.replace("    gpuCeiling: 8", extra + f"    gpuCeiling: {2 * pools + 2}")
    (root / "Pulumi.dev.yaml").write_text(config)
    (root / "platform/teams").mkdir(parents=True)
    for i in range(teams):
        (root / f"platform/teams/team-{i}.yaml").write_text(team_yaml(f"team-{i}"))
    return root


def timed(root: Path, chosen: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    graphs = evaluate_stacks(root, chosen)
    return time.perf_counter() - start, sum(len(g) for g in graphs.values())


def main() -> None:
    print("| stack | resources | evaluation under mocks |\n|---|--:|--:|")
    for stack in stacks(REPO):
        seconds, count = timed(REPO, [stack])
        print(f"| {stack} | {count} | {seconds:.1f} s |")
    seconds, count = timed(REPO, stacks(REPO))
    print(f"| all three, in parallel | {count} | {seconds:.1f} s |")
    print("\n| synthetic dev stack | resources | evaluation under mocks |\n|---|--:|--:|")
    with tempfile.TemporaryDirectory() as scratch:
        for pools, teams in ((0, 2), (10, 20), (50, 100)):
            seconds, count = timed(synthetic(Path(scratch), pools, teams), ["dev"])
            print(f"| +{pools} GPU pools, {teams} teams | {count} | {seconds:.1f} s |")


if __name__ == "__main__":
    main()
