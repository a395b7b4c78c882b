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

    Its JSON (``to_dict``) is lean by default: ``changes`` lists only the pending changes, and
    ``unchanged`` counts the unchanged Resources per plane and scope (``"models/fraud"``) with one
    digest of their keys and change digests; a file per Resource would be megabytes at 500 teams.
    ``full=True`` lists every change with its bodies. Both read back (``from_dict``) to a plan with
    the same hash, which covers the unchanged Resources through those groups.
    """

    target: str
    changes: tuple[Change, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)
    observed: Mapping[str, str] = field(default_factory=dict)
    commit: str = ""
    base: str = ""
    #: Set only when read from a lean file, whose ``changes`` then hold only the pending ones: its
    #: unchanged Resources as ``{"<plane>/<scope>": (count, digest)}`` (see ``unchanged_groups``).
    unchanged: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    @cached_property
    def unchanged_groups(self) -> dict[str, tuple[int, str]]:
        """The unchanged Resources per ``"<plane>/<scope>"``: how many, and the digest of their
        ``[key, change digest]`` in plan order; from the listed changes, plus a lean file's groups."""
        listed: dict[str, list[list[str]]] = {}
        for change in self.changes:
            if change.action is Action.NOOP:
                listed.setdefault(f"{change.plane}/{change.scope}", []).append([change.key, change_digest(change)])
        return {group: (len(pairs), _digest(pairs)) for group, pairs in listed.items()} | dict(self.unchanged)

    @cached_property
    def hash(self) -> str:
        content: dict[str, Any] = {
            "target": self.target,
            # Pending changes through their digests, each with its key and action; unchanged ones
            # through their groups, so a lean file (no unchanged Resource listed) hashes exactly as
            # the full one, and an update passed off as unchanged, or an edited group, moves the hash.
            "changes": [[c.key, c.action.value, change_digest(c)] for c in self.pending],
            "unchanged": {group: list(counted) for group, counted in self.unchanged_groups.items()},
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
        counts = Counter(c.action for c in self.changes)
        counts[Action.NOOP] += sum(count for count, _ in self.unchanged.values())
        return counts

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """The plan file's content; unchanged Resources counted per plane and scope, unless ``full``."""
        # A lean plan read back has no bodies for its unchanged Resources: it can only be written lean.
        lean = not full or bool(self.unchanged)
        data: dict[str, Any] = {
            "format": PLAN_FORMAT,
            "target": self.target,
            "hash": self.hash,
            "summary": {action.value: self.counts().get(action, 0) for action in Action},
            "commit": self.commit,
            "base": self.base,
            "changes": [_change_dict(c) for c in (self.pending if lean else self.changes)],
            "facts": self.facts,
            "observed": self.observed,
        }
        if lean:
            data["unchanged"] = {g: {"count": n, "digest": d} for g, (n, d) in self.unchanged_groups.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """A plan read back from its JSON; raises UserError when it is not one, or was edited."""
        hint = "make one with shipyard plan --out"
        if data.get("format") != PLAN_FORMAT:
            raise UserError(f"not a Shipyard plan (format {data.get('format')!r}, expected {PLAN_FORMAT!r})", hint)
        try:
            changes = tuple(_change_from(c) for c in data["changes"])
            unchanged = {str(group): _group_from(entry) for group, entry in (data.get("unchanged") or {}).items()}
            plan = cls(
                data["target"],
                changes,
                data.get("facts") or {},
                data.get("observed") or {},
                str(data.get("commit") or ""),
                str(data.get("base") or ""),
                unchanged,
            )
            # A listed unchanged change (with its bodies) must not fall in a group the file also counts,
            # where the group's counted digest would stand in for it and leave it out of the hash.
            if both := sorted({f"{c.plane}/{c.scope}" for c in changes if c.action is Action.NOOP} & set(unchanged)):
                raise ValueError(f"{both[0]}: unchanged resources both listed and counted")
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
        # Most of a large plan is unchanged: equal bodies (compared in C) have no diff to walk for.
        diffs = () if have.body == want.body else diff_bodies(have.body, want.body, ignored(want))
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
    """The digest of ``change_identity``."""
    return _digest(change_identity(change))


def fingerprint(observed: Sequence[Resource]) -> str:
    """One digest of what a plane observed: its Resources' keys and bodies."""
    return _digest(sorted((r.key, r.body) for r in observed))


def _change_dict(change: Change) -> dict[str, Any]:
    return {
        "key": change.key,
        "plane": change.plane,
        "kind": change.kind,
        "scope": change.scope,
        "name": change.name,
        "action": change.action.value,
        "source": str(change.source) if change.source else None,
        "diffs": [d.to_dict() for d in change.diffs],
        "desired": None if change.desired is None else change.desired.to_dict(),
        "observed": None if change.observed is None else change.observed.to_dict(),
    }


def _change_from(entry: Mapping[str, Any]) -> Change:
    return Change(
        entry["plane"],
        entry["kind"],
        entry["scope"],
        entry["name"],
        Action(entry["action"]),
        diffs=tuple(FieldDiff.from_dict(d) for d in entry["diffs"]),
        desired=Resource.from_dict(entry["desired"]) if entry.get("desired") else None,
        observed=Resource.from_dict(entry["observed"]) if entry.get("observed") else None,
    )


def _group_from(entry: Mapping[str, Any]) -> tuple[int, str]:
    count, digest = entry["count"], entry["digest"]
    if type(count) is not int or count < 1 or not isinstance(digest, str):
        raise ValueError(f"an unchanged group is a positive count and a digest, not {dict(entry)!r}")
    return count, digest


def _digest(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _require_unique(resources: Sequence[Resource]) -> None:
    seen: set[str] = set()
    for resource in resources:
        if resource.key in seen:
            raise InternalError(f"two desired Resources share the key {resource.key!r} (a plane bug)")
        seen.add(resource.key)
