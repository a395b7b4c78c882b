"""The data every plane speaks: positions, Resources, Changes and Diagnostics.

Everything here is plain, frozen and JSON-able so that the engine can diff,
hash, render and journal it without knowing which plane produced it.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: A path into a JSON-able body: mapping keys and list indexes.
FieldPath = tuple[str | int, ...]

#: The body key of a Resource that states what it can cost a month, in US dollars. A plan's summary
#: adds the key up over its changes (before and after), so a review sees the monthly cost delta; a
#: plane sets it on one Resource per bill (the infra plane: each stack's node pools at max size).
MONTHLY_COST = "monthlyCostUsd"


@dataclass(frozen=True, order=True)
class SourcePosition:
    """Where something was written: a repo-relative file, 1-based line and column."""

    file: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, eq=True)
class Resource:
    """One thing a plane manages, in a shape every plane shares.

    Its identity is structured: the ``plane``, the ``kind``, the ``scope`` it belongs to (a team,
    or an infra stack) and its ``name`` within that scope. The ``key`` is derived from them and
    never parsed back apart. ``body`` is plain JSON-able data: what a reviewer reads and the diff
    compares. ``payload`` is what the applier needs beside it and a reviewer does not read (the
    compiled pipeline to run, the manifest digest to serve): derived from the same inputs, kept
    out of the diff and the rendered plan, and covered by the plan's hash. Example::

        Resource("tenancy", "Namespace", "fraud", "fraud", {"metadata": {...}})
        # key: tenancy/fraud/Namespace/fraud
    """

    plane: str
    kind: str
    scope: str
    name: str
    body: Mapping[str, Any]
    source: SourcePosition | None = field(default=None, compare=False)
    payload: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return resource_key(self.plane, self.scope, self.kind, self.name)

    def to_dict(self) -> dict[str, Any]:
        found = {
            "plane": self.plane,
            "kind": self.kind,
            "scope": self.scope,
            "name": self.name,
            "key": self.key,
            "body": self.body,
            "source": None if self.source is None else str(self.source),
        }
        return found | ({"payload": self.payload} if self.payload else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resource:
        source = data.get("source")
        position = None
        if source:
            file, line, column = str(source).rsplit(":", 2)
            position = SourcePosition(file, int(line), int(column))
        return cls(
            data["plane"], data["kind"], data["scope"], data["name"], data["body"], position, data.get("payload", {})
        )


def resource_key(plane: str, scope: str, kind: str, name: str) -> str:
    """The one way a Resource's key is made: ``<plane>/<scope>/<kind>/<name>``."""
    return f"{plane}/{scope}/{kind}/{name}"


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NOOP = "noop"


class FieldOp(enum.StrEnum):
    ADD = "add"
    REMOVE = "remove"
    CHANGE = "change"


@dataclass(frozen=True)
class FieldDiff:
    """One field that differs: ``before`` is None for ADD, ``after`` is None for REMOVE."""

    path: FieldPath
    op: FieldOp
    before: Any = None
    after: Any = None

    @property
    def dotted(self) -> str:
        return dotted(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {"path": list(self.path), "op": self.op.value, "before": self.before, "after": self.after}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldDiff:
        return cls(tuple(data["path"]), FieldOp(data["op"]), data.get("before"), data.get("after"))


@dataclass(frozen=True)
class Change:
    """What a plan will do to one Resource; ``desired``/``observed`` are None when absent.

    An applier acts on exactly this: the desired body carries everything it needs (the
    version to promote, the manifest to serve, the compiled pipeline to run).
    """

    plane: str
    kind: str
    scope: str
    name: str
    action: Action
    diffs: tuple[FieldDiff, ...] = ()
    desired: Resource | None = None
    observed: Resource | None = None

    @property
    def key(self) -> str:
        return resource_key(self.plane, self.scope, self.kind, self.name)

    @property
    def source(self) -> SourcePosition | None:
        for resource in (self.desired, self.observed):
            if resource is not None and resource.source is not None:
                return resource.source
        return None


def content_digest(content: str | bytes | Any) -> str:
    """A short, stable name for content: text or bytes as they are, anything else as canonical JSON.

    For versions named by what they hold (a pipeline's IR, the manifest a server runs).
    """
    if isinstance(content, str):
        content = content.encode("utf-8")
    elif not isinstance(content, bytes):
        content = json.dumps(content, sort_keys=True).encode("utf-8")
    return hashlib.sha256(content).hexdigest()[:16]


def dotted(path: FieldPath) -> str:
    """``("spec", "hard", 0, "cpu")`` -> ``spec.hard[0].cpu``; keys with dots are bracketed."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in part or not part:
            out += f'["{part}"]'
        else:
            out += f".{part}" if out else part
    return out or "<document>"


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    WAIVED = "waived"  # a mandatory finding an unexpired waiver covers: shown, never blocking


@dataclass(frozen=True)
class Diagnostic:
    """A finding a user can act on, printed as ``path:line:col: key: got X, expected Y (hint)``.

    ``snippet`` is the offending source line, captured at load time so that
    rendering stays a pure function of the diagnostic.
    """

    rule: str
    message: str
    position: SourcePosition | None = None
    key_path: str = ""
    severity: Severity = Severity.ERROR
    hint: str = ""
    snippet: str | None = None
    #: What the finding is about, for waivers to match: a spec's ref (``ModelDeployment/fraud/scorer``)
    #: or a resource key; empty when only its file says.
    subject: str = ""

    @classmethod
    def mismatch(
        cls,
        rule: str,
        *,
        got: str,
        expected: str,
        position: SourcePosition | None = None,
        key_path: str = "",
        hint: str = "",
        snippet: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> Diagnostic:
        """The common case: a value was found where something else was expected."""
        return cls(rule, f"got {got}, expected {expected}", position, key_path, severity, hint, snippet)

    @property
    def detail(self) -> str:
        """The finding without its position: ``key: got X, expected Y (hint)``."""
        key = f"{self.key_path}: " if self.key_path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{key}{self.message}{hint}"

    @property
    def headline(self) -> str:
        return f"{self.position}: {self.detail}" if self.position else self.detail

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "file": self.position.file if self.position else None,
            "line": self.position.line if self.position else None,
            "column": self.position.column if self.position else None,
            "key": self.key_path,
            "message": self.message,
            "hint": self.hint,
        } | ({"subject": self.subject} if self.subject else {})
