"""Drift: how a target differs from what was last applied to it, told apart from what is not applied yet.

Two comparisons, each a plan computed with the same diff as ``shipyard plan``:

* *changed outside Shipyard*: the last-applied Resources against what each plane observes
  live (an alias moved by hand, a stopped model server, a deleted namespace);
* *not yet applied*: the repo at HEAD (over facts pinned now) against the last-applied
  Resources (a feature view edited in git, merged but not applied).

There is no ``drift --fix``: the fix for either is ``shipyard apply``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shipyard.core.plan import make_plan
from shipyard.engine import planner
from shipyard.engine.evaluation import repository_cache
from shipyard.engine.registry import Registry
from shipyard.engine.state.applied import Applied, read_applied
from shipyard.engine.state.home import open_store
from shipyard.engine.targets import TargetRef
from shipyard.sdk.errors import UserError
from shipyard.sdk.model import Change


@dataclass(frozen=True)
class Drift:
    target: str
    applied: Applied
    outside: tuple[Change, ...]  # desired = last applied, observed = live
    pending: tuple[Change, ...]  # desired = HEAD, observed = last applied

    @property
    def found(self) -> bool:
        return bool(self.outside or self.pending)


def drift(registry: Registry, root: Path, ref: TargetRef) -> Drift:
    checked = planner.validate(registry, root)
    target = planner.resolve(registry, root, ref)
    applied = read_applied(open_store(target, checked.specs))
    if applied is None:
        raise UserError(
            f"nothing has been applied to '{ref.name}' yet, so there is no record to compare with",
            hint=f"shipyard apply -t {ref.name} (drift compares the target with its last apply)",
        )
    cache = repository_cache(root)
    ctxs = planner.contexts(registry, root, checked.specs, ref.name, target, cache)
    head = planner.desired_state(registry, ctxs, cache)
    live = [r for plane in registry.planes for r in plane.observe(ctxs[plane.name], target)]
    planes = {plane.name for plane in registry.planes}
    last = [r for r in applied.resources.values() if r.plane in planes]
    outside = make_plan(ref.name, last, live, registry.rules).pending
    pending = make_plan(ref.name, head, last, registry.rules).pending
    return Drift(ref.name, applied, outside, pending)
