"""Kinds: the spec documents plugins contribute, and the loaded specs themselves."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel

from shipyard.sdk.errors import UserError
from shipyard.sdk.model import Diagnostic, FieldPath, SourcePosition, dotted

API_VERSION = "shipyard.dev/v1alpha1"
#: DNS-1123 label: names become Kubernetes namespaces, object names and URL parts.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"

# -- labels: Kubernetes label rules, since labels are copied onto the objects a spec creates -------

#: A label value: empty, or up to 63 letters, digits, '-', '_' and '.', starting and ending alphanumeric.
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
_LABEL_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
#: A label key: an optional DNS-subdomain prefix and '/', then a name as a value's but not empty.
LABEL_KEY_PATTERN = rf"^({_LABEL_PREFIX}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_LABEL_WORDS = "letters, digits, '-', '_' and '.', starting and ending with a letter or digit"


def _no_control_characters(what: str, text: str) -> None:
    for at, character in enumerate(text, start=1):
        if not character.isprintable():
            raise ValueError(f"a {what} without control characters: character {at} is {character!r}; remove it")


def _label_value(value: str) -> str:
    _no_control_characters("label value", value)
    if len(value) > 63:
        raise ValueError(f"a label value of at most 63 characters, not {len(value)}; shorten it")
    if not _LABEL_NAME.fullmatch(value):
        raise ValueError(f"a label value of {_LABEL_WORDS} (Kubernetes label rules); replace other characters with '-'")
    return value


def _label_key(key: str) -> str:
    _no_control_characters("label key", key)
    prefix, slash, name = key.rpartition("/")
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"a label key of at most 63 {_LABEL_WORDS}, after an optional 'prefix/'")
    if slash and (len(prefix) > 253 or not re.fullmatch(_LABEL_PREFIX, prefix)):
        raise ValueError("a label key prefix that is a DNS subdomain (lowercase, such as example.com), then '/'")
    return key


_LABEL_KEY_SCHEMA = {"type": "string", "pattern": LABEL_KEY_PATTERN, "maxLength": 317}
_LABEL_VALUE_SCHEMA = {"type": "string", "pattern": LABEL_VALUE_PATTERN, "maxLength": 63}
LabelKey = Annotated[str, AfterValidator(_label_key), WithJsonSchema(_LABEL_KEY_SCHEMA)]
LabelValue = Annotated[str, AfterValidator(_label_value), WithJsonSchema(_LABEL_VALUE_SCHEMA)]
#: ``metadata.labels``: keys and values as Kubernetes accepts them on an object's labels.
Labels = Annotated[
    dict[LabelKey, LabelValue],
    WithJsonSchema({"type": "object", "propertyNames": _LABEL_KEY_SCHEMA, "additionalProperties": _LABEL_VALUE_SCHEMA}),
]


class SpecModel(BaseModel):
    """Base for every kind's ``spec``: camelCase keys in YAML, unknown keys rejected.

    Example::

        class VectorIndexSpec(SpecModel):
            dimensions: int = Field(gt=0)
            metric: Literal["cosine", "l2"] = "cosine"
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        strict=False,
    )


@dataclass(frozen=True)
class Kind:
    """A document kind a plugin contributes.

    ``globs`` say where its documents live, relative to the repo root; the loader
    reads every file they match. ``team_scoped`` kinds must name an existing Team
    in ``metadata.team``.
    """

    name: str
    spec_model: type[SpecModel]
    globs: tuple[str, ...]
    description: str = ""
    team_scoped: bool = True


@dataclass(frozen=True)
class Spec:
    """One validated document, with the position of every value it was read from."""

    kind: str
    name: str
    team: str | None
    spec: Any
    source: SourcePosition
    labels: dict[str, str] = field(default_factory=dict)
    positions: Mapping[FieldPath, SourcePosition] = field(default_factory=dict, repr=False, compare=False)
    lines: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def ref(self) -> str:
        scope = f"{self.team}/" if self.team else ""
        return f"{self.kind}/{scope}{self.name}"

    def position(self, *path: str | int) -> SourcePosition:
        """Where ``path`` (YAML keys, e.g. ``"spec", "quota", "gpu"``) or its nearest parent was written."""
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.positions:
                return self.positions[path[:cut]]
        return self.source

    def diagnostic(self, path: FieldPath, *, got: str, expected: str, hint: str = "") -> Diagnostic:
        """A finding about this spec pointing at ``path``; policies use it. Example::

        team.diagnostic(("spec", "namespace"), got="'kube-system'", expected="a team namespace")
        """
        position = self.position(*path)
        line = self.lines[position.line - 1] if 0 < position.line <= len(self.lines) else None
        found = Diagnostic.mismatch(
            "policy", got=got, expected=expected, hint=hint, position=position, key_path=dotted(path), snippet=line
        )
        return replace(found, subject=self.ref)


@dataclass(frozen=True)
class SpecSet:
    """Every validated spec of a repo, in file order."""

    specs: tuple[Spec, ...] = ()

    def __iter__(self) -> Iterator[Spec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def of_kind(self, kind: str) -> Sequence[Spec]:
        return self._by_kind.get(kind, ())

    def named(self, kind: str, name: str, team: str | None = None) -> Spec | None:
        """The spec of ``kind`` called ``name`` (within ``team`` for team-owned kinds), or None."""
        return self._by_name.get((kind, name, team))

    # Indexes built on first use: policies and planes look specs up per Resource and per finding,
    # and a scan each time would make a repository of N teams cost N² to check.
    @functools.cached_property
    def _by_kind(self) -> dict[str, tuple[Spec, ...]]:
        grouped: dict[str, list[Spec]] = {}
        for spec in self.specs:
            grouped.setdefault(spec.kind, []).append(spec)
        return {kind: tuple(found) for kind, found in grouped.items()}

    @functools.cached_property
    def _by_name(self) -> dict[tuple[str, str, str | None], Spec]:
        index: dict[tuple[str, str, str | None], Spec] = {}
        for spec in self.specs:
            index.setdefault((spec.kind, spec.name, spec.team), spec)  # the first, as a scan would find
        return index

    def require(self, kind: str, name: str, team: str | None = None, *, hint: str) -> Spec:
        """Like ``named``, but a missing spec is the user's error, with ``hint`` saying how to add it."""
        found = self.named(kind, name, team)
        if found is None:
            raise UserError(f"no {kind} '{name if team is None else f'{team}/{name}'}' is declared", hint=hint)
        return found

    @property
    def files(self) -> frozenset[str]:
        return frozenset(spec.source.file for spec in self.specs)
