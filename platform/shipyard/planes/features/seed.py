"""Seeds the local target with each team's synthetic data: the stand-in for upstream data on a laptop.

A team opts in with ``features/<team>/synthetic.py``, a script that takes
``--out DIR --seed N [--corrupt nulls|range]``. It runs as a child process: it is
team code.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from shipyard.planes.features import feature_store
from shipyard.planes.features.config import offline_uri
from shipyard.sdk import SpecSet, UserError
from shipyard.sdk.platform import TEAM

GENERATOR = "synthetic.py"


@dataclass(frozen=True)
class Seeded:
    team: str
    folder: Path
    skipped: bool


def seed(
    root: Path,
    specs: SpecSet,
    *,
    teams: tuple[str, ...] = (),
    seed_value: int = 7,
    corrupt: str | None = None,
    force: bool = False,
) -> list[Seeded]:
    """Write each team's data into the local offline store; existing data is kept unless ``force``."""
    store = feature_store(specs, "local")
    known = [t.name for t in specs.of_kind(TEAM.name)]
    unknown = sorted(set(teams) - set(known))
    if unknown:
        raise UserError(f"no such team: {', '.join(unknown)}", hint=f"teams: {', '.join(known)}")
    done = []
    for team in teams or tuple(known):
        generator = root / "features" / team / GENERATOR
        if not generator.is_file():
            continue
        folder = root / offline_uri(store, team)
        if folder.is_dir() and any(folder.glob("*.parquet")) and not (force or corrupt):
            done.append(Seeded(team, folder, skipped=True))
            continue
        command = [sys.executable, str(generator), "--out", str(folder), "--seed", str(seed_value)]
        result = subprocess.run(command + (["--corrupt", corrupt] if corrupt else []), capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError(
                f"features/{team}/{GENERATOR} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}",
                hint=f"run it by hand: {' '.join(command)}",
            )
        done.append(Seeded(team, folder, skipped=False))
    return done
