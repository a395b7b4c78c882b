"""`shipyard up`: cold (a fresh clone of this repo, `make install` included) and warm, split by step;
then `shipyard drift` on the template with the platform up.

Run with `make bench`; the figures go into the README. The clone is of the committed HEAD,
so commit first. The install uses uv's cache as this machine has it (packages already
downloaded once); the step times are the ones `up` itself prints in its summary.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEP = re.compile(r"(\w+) ([0-9.]+) s")


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def steps(output: str) -> dict[str, float]:
    line = next(line for line in output.splitlines() if line.startswith("steps: "))
    return {name: float(seconds) for name, seconds in STEP.findall(line)}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-up-") as scratch:
        clone = Path(scratch) / "shipyard"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        install, _ = timed(["make", "install"], clone)
        shipyard = [str(clone / ".venv/bin/shipyard"), "up"]
        try:
            first, first_out = timed(shipyard, clone)
            warm, warm_out = timed(shipyard, clone)
            # drift on the template with the platform up: pin, observe every plane, two diffs
            drift = sorted(timed([str(clone / ".venv/bin/shipyard"), "drift"], clone)[0] for _ in range(3))[1]
        finally:
            subprocess.run([str(clone / ".venv/bin/shipyard"), "down"], cwd=clone, capture_output=True)
    print("| run | total | " + " | ".join(steps(first_out)) + " |")
    print("|---|--:|" + "--:|" * len(steps(first_out)))
    print(f"| cold: fresh clone, `make install` | {install:.1f} s |" + " |" * len(steps(first_out)))
    for name, seconds, output in (("cold: first `up`", first, first_out), ("warm: `up` again", warm, warm_out)):
        split = " | ".join(f"{s:.1f} s" for s in steps(output).values())
        print(f"| {name} | {seconds:.1f} s | {split} |")
    print(f"\ncold total (clone, install, first up): {install + first:.1f} s")
    print(f"`shipyard drift` with the platform up (median of 3): {drift:.1f} s")


if __name__ == "__main__":
    main()
