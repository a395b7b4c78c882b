"""What was last applied to a target: the desired Resources of its last successful apply.

It is what drift is measured against: live ≠ last applied is a change made outside
Shipyard; HEAD ≠ last applied is a change not yet applied. Bodies are kept (not only
digests) so drift can name each field that moved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shipyard.engine.state.store import ObjectStore
from shipyard.sdk.errors import UserError
from shipyard.sdk.model import Resource

APPLIED = "applied.json"
FORMAT = "shipyard.dev/applied/v1"


@dataclass(frozen=True)
class Applied:
    plan: str = ""
    commit: str = ""
    at: float = 0.0
    resources: dict[str, Resource] = field(default_factory=dict)

    def merged(self, plan: str, commit: str, planes: Iterable[str], desired: Iterable[Resource]) -> Applied:
        """This record with ``planes`` replaced by ``desired`` (an apply may cover some planes only)."""
        replaced = set(planes)
        kept = {k: r for k, r in self.resources.items() if r.plane not in replaced}
        kept |= {r.key: Resource(r.plane, r.kind, r.scope, r.name, r.body) for r in desired if r.plane in replaced}
        return Applied(plan, commit, time.time(), dict(sorted(kept.items())))

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "format": FORMAT,
            "plan": self.plan,
            "commit": self.commit,
            "at": self.at,
            "resources": [r.to_dict() for r in self.resources.values()],
        }
        return json.dumps(data, sort_keys=True, indent=1).encode()


def read_applied(store: ObjectStore) -> Applied | None:
    """The record, or None before the first successful apply."""
    stored = store.get(APPLIED)
    if stored is None:
        return None
    try:
        data = json.loads(stored.data)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        resources = [Resource.from_dict(r) for r in data["resources"]]
        return Applied(str(data["plan"]), str(data["commit"]), float(data["at"]), {r.key: r for r in resources})
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(
            f"the last-applied record {store.where(APPLIED)} is corrupted ({type(error).__name__}: {error})",
            hint="restore it from the bucket's versions, or remove it: the next apply writes it again",
        ) from error


def write_applied(store: ObjectStore, applied: Applied) -> None:
    store.put(APPLIED, applied.to_bytes())
