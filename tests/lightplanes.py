"""Two light planes for the state tests: real appliers over files, applied in milliseconds.

``shelves`` keeps one file per Shelf Resource (an idempotent put, like a Kubernetes apply);
each apply call is also logged, so a test can count how often a change ran. ``catalog`` pins
the shelves that exist and desires one Catalog listing them: stage 1 creating shelves moves
its facts, so on the local target it is planned again as stage 2, like promotion after
training. ``python tests/lightplanes.py <repo> <target> [--hold S]`` applies with them
(the kill-point harness and the concurrency tests run it as a child process).
"""

from __future__ import annotations

import json
import os
import sys
import time
import types
from collections.abc import Iterable, Mapping
from pathlib import Path

from shipyard.engine.registry import Registry, discover
from shipyard.sdk import Action, Applier, Change, DesiredContext, Plane, Resource, Target
from shipyard.sdk.planes import Facts
from shipyard.sdk.store import ResourceStore


def _store(target: Target, plane: str) -> ResourceStore:
    return ResourceStore(target.root / ".light" / target.name / plane)


def _put(plane: str, change: Change, target: Target) -> None:
    store = _store(target, plane)
    log = target.root / ".light" / target.name / "calls.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(change.key + "\n")
    if change.action is Action.DELETE:
        store.delete(change.key)
    elif change.desired is not None:
        store.put(change.desired)


class Shelves(Plane):
    name = "shelves"
    order = 30

    def __init__(self, hold_s: float = 0.0) -> None:
        self.hold_s = hold_s

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        for team in ctx.specs.of_kind("Team"):
            for purpose in ("datasets", "models"):
                yield Resource(self.name, "Shelf", team.name, purpose, {"gpu": team.spec.quota.gpu})

    def observe(self, ctx: DesiredContext, target: Target) -> Iterable[Resource]:
        return list(_store(target, self.name))

    def appliers(self, target: Target) -> Mapping[str, Applier]:
        return {"Shelf": self.put}

    def put(self, change: Change, ctx: DesiredContext, target: Target) -> None:
        time.sleep(self.hold_s)  # a slow apply, so that concurrent applies overlap
        _put(self.name, change, target)


class Catalog(Plane):
    name = "catalog"
    order = 40

    def pin(self, ctx: DesiredContext, target: Target) -> Facts:
        return {"shelves": sorted(r.key for r in _store(target, Shelves.name))}

    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        yield Resource(self.name, "Catalog", "platform", "all", {"shelves": list(ctx.facts.get("shelves", []))})

    def observe(self, ctx: DesiredContext, target: Target) -> Iterable[Resource]:
        return list(_store(target, self.name))

    def appliers(self, target: Target) -> Mapping[str, Applier]:
        return {"Catalog": lambda change, ctx, target: _put(self.name, change, target)}


def light_registry(hold_s: float = 0.0) -> Registry:
    planes = [Shelves(hold_s), Catalog()]
    return discover(extra=[("light", types.SimpleNamespace(shipyard_planes=lambda: planes))]).only(
        ("shelves", "catalog")
    )


def end_state(root: Path, target: str = "local") -> dict[str, object]:
    """What the light planes hold: compared across runs."""
    light = root / ".light" / target
    files = sorted(p for folder in (light / "shelves", light / "catalog") for p in folder.glob("*.json"))
    return {p.name: json.loads(p.read_text()) for p in files}


if __name__ == "__main__":
    from shipyard.engine.apply import apply
    from shipyard.engine.targets import parse_target
    from shipyard.sdk.errors import ShipyardError

    repo, target = Path(sys.argv[1]), sys.argv[2]
    hold = float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--hold" else 0.0
    try:
        report = apply(light_registry(hold), repo, parse_target(target), environ=os.environ)
    except ShipyardError as error:
        print(error, file=sys.stderr)
        sys.exit(error.exit_code)
    print(f"applied {len(report.applied)} in {len(report.stages)} stages")
