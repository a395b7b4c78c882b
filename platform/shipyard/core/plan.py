"""Plan: the frozen, ordered list of Changes from observed to desired. Pure: no I/O, no clock."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from shipyard.core.diff import diff_bodies
from shipyard.sdk.errors import InternalError, UserError
from shipyard.sdk.model import Action, Change, FieldDiff, FieldPath, Resource

PLAN_FORMAT = "shipyard.dev/plan/v1"

#: Per plane: (apply order, {resource kind: ignored field paths}).
PlaneRules = Mapping[str, tuple[int, Mapping[str, Sequence[FieldPath]]]]


@dataclass(frozen=True)
class Plan:
    """What applying to ``target`` would do, and the live facts it was planned from.

    ``facts`` maps each plane to what its ``pin`` read (empty for a plan from git alone);
    ``observed`` maps each plane to a fingerprint of what it observed, so an apply can tell
    that the world moved even where the changes would come out the same. ``commit`` is the
    git commit the plan was made from, ``base`` the one a ``base:<rev>`` plan compared with.
    ``hash`` covers all of it: it names what was reviewed.

    Its JSON (``to_dict``) is lean by default: an unchanged Resource is listed by its identity and
    its change digest, without the bodies that would otherwise make most of the file; ``full=True``
    writes every body. Both read back (``from_dict``) to a plan with the same hash.
    """

    target: str
    changes: tuple[Change, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)
    observed: Mapping[str, str] = field(default_factory=dict)
    commit: str = ""
    base: str = ""

    @cached_property
    def hash(self) -> str:
        content: dict[str, Any] = {
            "target": self.target,
            # Each change through its digest, so a lean entry (no bodies) counts exactly as its full
            # form would. Its key and action beside it, because a lean entry's digest cannot be
            # checked against them: an edited key, or an update passed off as unchanged, moves the hash.
            "changes": [[c.key, c.action.value, change_digest(c)] for c in self.changes],
            "facts": self.facts,
        }
        # Only when set, so plans made without them (from git alone, in tests) keep their hash.
        bound = {"observed": self.observed, "commit": self.commit, "base": self.base}
        return _digest(content | {k: v for k, v in bound.items() if v})

    @property
    def pending(self) -> tuple[Change, ...]:
        """Changes that do something, in apply order."""
        return tuple(c for c in self.changes if c.action is not Action.NOOP)

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    def counts(self) -> Counter[Action]:
        return Counter(c.action for c in self.changes)

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """The plan file's content; unchanged Resources by key and digest only, unless ``full``."""
        return {
            "format": PLAN_FORMAT,
            "target": self.target,
            "hash": self.hash,
            "summary": {action.value: self.counts().get(action, 0) for action in Action},
            "commit": self.commit,
            "base": self.base,
            "changes": [_change_dict(c, full) for c in self.changes],
            "facts": self.facts,
            "observed": self.observed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """A plan read back from its JSON; raises UserError when it is not one, or was edited."""
        hint = "make one with shipyard plan --out"
        if data.get("format") != PLAN_FORMAT:
            raise UserError(f"not a Shipyard plan (format {data.get('format')!r}, expected {PLAN_FORMAT!r})", hint)
        try:
            changes = tuple(_change_from(c) for c in data["changes"])
            plan = cls(
                data["target"],
                changes,
                data.get("facts") or {},
                data.get("observed") or {},
                str(data.get("commit") or ""),
                str(data.get("base") or ""),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"not a usable plan ({type(error).__name__}: {error})", hint) from error
        # The hash covers each change's key as derived from its plane, kind, scope and name; the
        # "key" written beside them is what readers of the file go by, so it must agree.
        keys_agree = [c.get("key") for c in data["changes"]] == [c.key for c in changes]
        if not keys_agree or data.get("hash") != plan.hash:
            raise UserError("the plan file was edited after it was made (its hash does not match its content)", hint)
        return plan


def make_plan(
    target: str,
    desired: Sequence[Resource],
    observed: Sequence[Resource],
    rules: PlaneRules,
    facts: Mapping[str, Any] | None = None,
) -> Plan:
    """Diff desired against observed; ``facts`` are recorded in the plan (and its hash).

    Creates and updates come in plane order, each plane's in the order it
    declared its Resources (a Namespace before what lives in it); deletes come
    last, in reverse plane order, so dependants go before what they depend on.
    """
    observed_by_key = {r.key: r for r in observed}
    desired_keys = {r.key for r in desired}
    _require_unique(desired)

    def order(plane: str) -> int:
        return rules[plane][0] if plane in rules else 1000

    def ignored(resource: Resource) -> Sequence[FieldPath]:
        return rules[resource.plane][1].get(resource.kind, ()) if resource.plane in rules else ()

    forward: list[Change] = []
    for want in desired:
        have = observed_by_key.get(want.key)
        if have is None:
            forward.append(_change(want, Action.CREATE, (), want, None))
            continue
        diffs = diff_bodies(have.body, want.body, ignored(want))
        action = Action.UPDATE if diffs else Action.NOOP
        forward.append(_change(want, action, diffs, want, have))
    index = {c.key: i for i, c in enumerate(forward)}
    forward.sort(key=lambda c: (order(c.plane), c.plane, index[c.key]))

    deletes = [_change(have, Action.DELETE, (), None, have) for have in observed if have.key not in desired_keys]
    deletes.sort(key=lambda c: (-order(c.plane), c.plane, c.key))
    return Plan(target, tuple(forward + deletes), dict(facts or {}))


def _change(
    of: Resource, action: Action, diffs: tuple[FieldDiff, ...], desired: Resource | None, observed: Resource | None
) -> Change:
    return Change(of.plane, of.kind, of.scope, of.name, action, diffs, desired, observed)


def change_identity(change: Change) -> dict[str, Any]:
    """What makes a change this change: key, action, field diffs, and the desired body and payload."""
    return {
        "key": change.key,
        "action": change.action.value,
        "diffs": [d.to_dict() for d in change.diffs],
        "desired": None if change.desired is None else change.desired.body,
        "payload": None if change.desired is None or not change.desired.payload else change.desired.payload,
    }


def change_digest(change: Change) -> str:
    """The digest of ``change_identity``; a change read from a lean plan without bodies carries it."""
    return change.digest or _digest(change_identity(change))


def fingerprint(observed: Sequence[Resource]) -> str:
    """One digest of what a plane observed: its Resources' keys and bodies."""
    return _digest(sorted((r.key, r.body) for r in observed))


def _change_dict(change: Change, full: bool) -> dict[str, Any]:
    identity = {
        "key": change.key,
        "plane": change.plane,
        "kind": change.kind,
        "scope": change.scope,
        "name": change.name,
        "action": change.action.value,
    }
    # A change read back without its bodies can only be written without them again.
    if change.digest or (change.action is Action.NOOP and not full):
        return identity | {"digest": change_digest(change)}
    return identity | {
        "source": str(change.source) if change.source else None,
        "diffs": [d.to_dict() for d in change.diffs],
        "desired": None if change.desired is None else change.desired.to_dict(),
        "observed": None if change.observed is None else change.observed.to_dict(),
    }


def _change_from(entry: Mapping[str, Any]) -> Change:
    action = Action(entry["action"])
    identity = (entry["plane"], entry["kind"], entry["scope"], entry["name"], action)
    if "digest" in entry:  # a lean entry: it has nothing to apply, so only an unchanged Resource may be one
        if action is not Action.NOOP or not isinstance(entry["digest"], str) or not entry["digest"]:
            raise ValueError(f"{entry.get('key')}: only an unchanged resource is listed by digest alone")
        return Change(*identity, digest=entry["digest"])
    return Change(
        *identity,
        diffs=tuple(FieldDiff.from_dict(d) for d in entry["diffs"]),
        desired=Resource.from_dict(entry["desired"]) if entry.get("desired") else None,
        observed=Resource.from_dict(entry["observed"]) if entry.get("observed") else None,
    )


def _digest(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _require_unique(resources: Sequence[Resource]) -> None:
    seen: set[str] = set()
    for resource in resources:
        if resource.key in seen:
            raise InternalError(f"two desired Resources share the key {resource.key!r} (a plane bug)")
        seen.add(resource.key)
