"""Rule evaluation time: every rule in force over the template, and over the template's teams cloned N times.

Run with `make bench`; the figures go into the README ("Benchmarks"). The inputs (specs and
the desired Resources of a base plan) are computed once; what is timed is the rules alone,
both passes (`validate`'s rules over specs and files, `plan`'s over Resources), median of
five runs in this process. A synthetic repository of N teams is the template's team-scoped
specs and Resources copied N times under new team names (one infra program, as in a real
repository), so the figure grows with what the rules read.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

from shipyard.core.policies import run_policies
from shipyard.engine import planner
from shipyard.engine.registry import discover
from shipyard.engine.targets import parse_target
from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.model import Resource
from shipyard.sdk.planes import Policy

REPO = Path(__file__).resolve().parents[2]
TEAM_PLANES = ("tenancy", "features", "pipelines", "models")


def timed(policies: list[Policy], specs: SpecSet, resources: list[Resource], runs: int = 5) -> float:
    spec_rules = [p for p in policies if not p.needs_resources]
    resource_rules = [p for p in policies if p.needs_resources]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_policies(spec_rules, specs, root=REPO)
        run_policies(resource_rules, specs, resources, REPO)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cloned(specs: SpecSet, resources: list[Resource], teams: int) -> tuple[SpecSet, list[Resource]]:
    """The template's team-scoped specs and Resources, once per synthetic team."""
    own = [s for s in specs if s.team is None and s.kind != "Team"]
    team_specs = [s for s in specs if s.kind == "Team"]
    scoped = [s for s in specs if s.team is not None]
    shared = [r for r in resources if r.plane not in TEAM_PLANES]
    per_team = [r for r in resources if r.plane in TEAM_PLANES]
    out_specs, out_resources = list(own), list(shared)
    for i in range(teams):
        out_specs += [replace(s, name=f"{s.name}-{i}") for s in team_specs]
        out_specs += [replace(s, team=f"{s.team}-{i}") for s in scoped]
        out_resources += [replace(r, scope=f"{r.scope}-{i}") for r in per_team]
    return SpecSet(tuple(out_specs)), out_resources


def main() -> None:
    registry = discover()
    validation = planner.validate(registry, REPO)
    base = planner.plan(registry, REPO, parse_target("base:HEAD"), "dev")
    resources = [c.desired for c in base.plan.changes if c.desired is not None]
    policies = list(validation.rules.policies)
    print(f"{len(policies)} rules ({sum(p.needs_resources for p in policies)} over Resources)")
    print("| repository | specs | Resources | rule evaluation (median) | per team |")
    print("|---|--:|--:|--:|--:|")
    seconds = timed(policies, validation.specs, resources)
    teams = sum(1 for s in validation.specs if s.kind == "Team")
    print(f"| the template ({teams} teams) | {len(validation.specs)} | {len(resources)} | {seconds * 1000:.1f} ms | |")
    for count in (10, 50, 100):
        specs, grown = cloned(validation.specs, resources, count)
        seconds = timed(policies, specs, grown, runs=3)
        print(
            f"| {count} x the template's teams | {len(specs)} | {len(grown)} | {seconds * 1000:.1f} ms "
            f"| {seconds * 1000 / (count * teams):.2f} ms |"
        )


if __name__ == "__main__":
    main()
