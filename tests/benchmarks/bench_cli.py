"""CLI start-up and validate/plan wall time, and how validate grows with repository size.

Run with `make bench`; the figures go into the README. Each number is the median
of several fresh processes, so it includes interpreter start-up and imports.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPYARD = str(Path(sys.executable).parent / "shipyard")
sys.path.insert(0, str(REPO / "tests"))
from conftest import team_yaml  # noqa: E402


def median_wall(args: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([SHIPYARD, *args], capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_repo(folder: Path, teams: int) -> Path:
    (folder / "platform" / "teams").mkdir(parents=True)
    for i in range(teams):
        (folder / "platform" / "teams" / f"team-{i}.yaml").write_text(team_yaml(f"team-{i}"))
    return folder


def main() -> None:
    rows = [
        ("`shipyard --help`", median_wall(["--help"])),
        ("`shipyard validate` (this repo)", median_wall(["--repo", str(REPO), "validate"])),
        ("`shipyard plan --target local` (this repo)", median_wall(["--repo", str(REPO), "plan"])),
    ]
    for teams in (10, 100, 1000):
        folder = Path(tempfile.mkdtemp(prefix="shipyard-bench-"))
        try:
            root = str(synthetic_repo(folder, teams))
            rows.append((f"`shipyard validate`, {teams} teams", median_wall(["--repo", root, "validate"], runs=3)))
            rows.append(
                (
                    f"`shipyard plan`, {teams} teams ({teams * 6} resources)",
                    median_wall(["--repo", root, "plan"], runs=3),
                )
            )
        finally:
            shutil.rmtree(folder)
    print("| command | median wall time |")
    print("|---|--:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.3f} s |")


if __name__ == "__main__":
    main()
