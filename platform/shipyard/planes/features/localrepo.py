"""Each team's feature folder as a plain Feast repository for the local environment.

``features/<team>/feature_store.yaml`` (git-ignored) holds the config the features plane uses for
that team on the local target (``config.feast_repo_yaml``), so ``feast plan``, ``feast apply`` and
``feast ui`` run in the folder work on the same registry and stores as ``shipyard``. It is written
by ``shipyard up`` (the plane's ``prepare``) and ``shipyard features init``; the plane itself never
reads it (Feast parses only ``*.py``, and ``FeaturesPlane.units`` leaves it out of the plan's inputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shipyard.planes.features.config import feast_repo_yaml, repo_config
from shipyard.sdk import SpecSet, UserError
from shipyard.sdk.featurerepo import REPO_CONFIG
from shipyard.sdk.platform import TEAM
from shipyard.sdk.store import private_dir

ENVIRONMENT = "local"


@dataclass(frozen=True)
class Written:
    team: str
    path: Path
    changed: bool


def write_repo_configs(root: Path, specs: SpecSet, *, teams: tuple[str, ...] = ()) -> list[Written]:
    """Write ``features/<team>/feature_store.yaml`` for each declared team with a features folder (or ``teams``).

    A file that already says the same is left alone. The registry's and online store's folder is made
    too (0700, under ``.shipyard/``): Feast's file registry makes only the last folder of its path.
    """
    from shipyard.planes.features import PLANE, feature_store

    store = feature_store(specs, ENVIRONMENT)
    known = [t.name for t in specs.of_kind(TEAM.name)]
    unknown = sorted(set(teams) - set(known))
    if unknown:
        raise UserError(f"no such team: {', '.join(unknown)}", hint=f"teams: {', '.join(known)}")
    without = sorted(t for t in teams if not (root / PLANE / t).is_dir())
    if without:
        raise UserError(
            f"no features folder for: {', '.join(without)}", hint="a team's Feast definitions live in features/<team>/"
        )
    written = []
    for team in teams or tuple(known):
        folder = root / PLANE / team
        if not folder.is_dir() or folder.is_symlink():
            continue
        path = folder / REPO_CONFIG
        if path.is_symlink():
            where = path.relative_to(root)
            raise UserError(f"{where} is a symbolic link", hint=f"remove it: Shipyard writes {REPO_CONFIG} there")
        text = feast_repo_yaml(store, team, root)
        config = repo_config(store, team, root)
        for local in (config["registry"]["path"], config["online_store"].get("path")):
            if local and "://" not in local:
                private_dir(Path(local).parent)
        changed = not path.is_file() or path.read_text(encoding="utf-8") != text
        if changed:
            path.write_text(text, encoding="utf-8")
        written.append(Written(team, path, changed))
    return written
