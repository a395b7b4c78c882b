"""Validates YAML documents into Specs: the envelope, then the kind's own ``spec`` model.

Every pydantic error is mapped back to the line and column it came from and
phrased as ``got X, expected Y (hint)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from shipyard.core.yamlsource import YamlDocument, clip
from shipyard.sdk.kinds import API_VERSION, NAME_PATTERN, Kind, Labels, Spec
from shipyard.sdk.model import Diagnostic, FieldPath, dotted

M = TypeVar("M", bound=BaseModel)
_NAME_HINT = "lowercase letters, digits and '-', at most 63, starting and ending alphanumeric"


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="Unique name of this document within its kind and team.")
    team: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="Owning Team (required for team-scoped kinds)."
    )
    labels: Labels = Field(
        default_factory=dict,
        description="Labels copied onto what the spec creates, so they follow Kubernetes' label rules.",
    )


class Envelope(BaseModel):
    """The part every document shares; ``spec`` is validated by the kind's model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    apiVersion: Literal["shipyard.dev/v1alpha1"]  # noqa: N815 - the YAML key
    kind: str
    metadata: Metadata
    spec: dict[str, Any]


def validate_document(doc: YamlDocument, kinds: Mapping[str, Kind]) -> tuple[Spec | None, list[Diagnostic]]:
    """One document -> a Spec, or every Diagnostic explaining why not."""
    if not isinstance(doc.data, dict):
        return None, [
            _diag(
                doc,
                "spec/not-a-mapping",
                (),
                got=_describe(doc.data),
                expected="a mapping with apiVersion, kind, metadata and spec",
                hint="each YAML document is one spec; '---' separates documents",
            )
        ]
    diagnostics: list[Diagnostic] = []
    envelope: Envelope | None = None
    try:
        envelope = Envelope.model_validate(doc.data)
    except ValidationError as error:
        diagnostics += [_from_pydantic(doc, (), item, Envelope) for item in error.errors()]

    kind_name = doc.data.get("kind")
    kind = kinds.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None and isinstance(kind_name, str):
        close = difflib.get_close_matches(kind_name, list(kinds), n=1)
        diagnostics.append(
            _diag(
                doc,
                "spec/unknown-kind",
                ("kind",),
                got=f"'{clip(kind_name)}'",
                expected="one of " + ", ".join(sorted(kinds)),
                hint=f"did you mean '{close[0]}'?"
                if close
                else "is the plugin that defines it installed? (shipyard plugins)",
            )
        )
    if kind is None:
        return None, diagnostics
    # The spec is checked even when the envelope is not, so one run reports everything.
    metadata = doc.data.get("metadata")
    if isinstance(metadata, dict):
        diagnostics += _scope_problems(doc, kind, metadata.get("team"))
    spec_value = None
    if isinstance(doc.data.get("spec"), dict):
        try:
            spec_value = kind.spec_model.model_validate(doc.data["spec"])
        except ValidationError as error:
            diagnostics += [_from_pydantic(doc, ("spec",), item, kind.spec_model) for item in error.errors()]
    if diagnostics or envelope is None:
        return None, diagnostics
    spec = Spec(
        kind=kind.name,
        name=envelope.metadata.name,
        team=envelope.metadata.team,
        spec=spec_value,
        source=doc.start,
        labels=dict(envelope.metadata.labels),
        positions=doc.values,
        lines=doc.lines,
    )
    return spec, []


def model_diagnostics(doc: YamlDocument, prefix: FieldPath, model: type[M]) -> tuple[M | None, list[Diagnostic]]:
    """``model`` validated from the value at ``prefix`` in ``doc``, or every problem at its line and column.

    For YAML files that are not spec documents (a Pulumi stack's config, say).
    """
    try:
        return model.model_validate(_at(doc.data, prefix)), []
    except ValidationError as error:
        return None, [_from_pydantic(doc, prefix, item, model) for item in error.errors()]


def document_schema(kind: Kind) -> dict[str, Any]:
    """JSON Schema of a whole document of ``kind``, for editor autocompletion."""
    schema = Envelope.model_json_schema()
    spec_schema = kind.spec_model.model_json_schema(by_alias=True)
    definitions = {**schema.pop("$defs", {}), **spec_schema.pop("$defs", {})}
    schema["title"] = kind.name
    schema["description"] = kind.description or f"A Shipyard {kind.name}."
    schema["properties"]["kind"] = {"const": kind.name, "title": "Kind"}
    schema["properties"]["apiVersion"] = {"const": API_VERSION, "title": "Apiversion"}
    schema["properties"]["spec"] = spec_schema
    if not kind.team_scoped:
        definitions["Metadata"]["properties"].pop("team", None)
    else:
        definitions["Metadata"]["required"] = ["name", "team"]
    schema["$defs"] = definitions
    return schema


def _scope_problems(doc: YamlDocument, kind: Kind, team: object) -> list[Diagnostic]:
    if kind.team_scoped and team is None:
        return [
            _diag(
                doc,
                "spec/missing-team",
                ("metadata", "team"),
                got="no team",
                expected=f"metadata.team naming the Team that owns this {kind.name}",
                hint="add 'team: <name>' under metadata",
            )
        ]
    if not kind.team_scoped and team is not None:
        return [
            _diag(
                doc,
                "spec/unexpected-team",
                ("metadata", "team"),
                got=f"team '{clip(str(team))}'",
                expected=f"no metadata.team on a {kind.name}",
                hint=f"a {kind.name} is not owned by a team; remove the key",
                at_key=True,
            )
        ]
    return []


def _diag(
    doc: YamlDocument,
    rule: str,
    path: FieldPath,
    *,
    got: str,
    expected: str,
    hint: str = "",
    at_key: bool = False,
) -> Diagnostic:
    position = doc.position(path, at_key=at_key)
    return Diagnostic.mismatch(
        rule,
        got=got,
        expected=expected,
        hint=hint,
        position=position,
        key_path=dotted(path),
        snippet=doc.snippet(position),
    )


def _from_pydantic(doc: YamlDocument, prefix: FieldPath, error: ErrorDetails, model: type[BaseModel]) -> Diagnostic:
    loc = _document_loc(_at(doc.data, prefix), error["loc"])
    path: FieldPath = (*prefix, *loc)
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        allowed = sorted(_schema_at(model, loc[:-1]).get("properties", {}))
        key = clip(str(loc[-1]))
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "remove it"
        return _diag(
            doc,
            "spec/unknown-key",
            path,
            got=f"unknown key '{key}'",
            expected="one of " + ", ".join(allowed) if allowed else "no keys here",
            hint=hint,
            at_key=True,
        )
    if kind == "missing":
        return _diag(doc, "spec/missing-key", path, got="nothing", expected=f"required key '{loc[-1]}'", hint="add it")
    expected = _expected(error, _schema_at(model, loc).get("description", ""))
    # A mapping as a whole (what a model validator checks across its fields) is pointed at by its
    # key: the mapping's own position is its first child's line, which the problem is not about.
    at_key = path in doc.keys and isinstance(_value_at(doc.data, path), dict)
    hint = ""
    if isinstance(value, bool) and "str" in kind:
        hint = "YAML reads yes/no/on/off/true/false as booleans; quote the value"
    elif kind == "literal_error" and isinstance(value, str):
        choices = [
            c.strip("'") for c in str(error.get("ctx", {}).get("expected", "")).replace(" or ", ", ").split(", ")
        ]
        close = difflib.get_close_matches(value, choices, n=1)
        hint = f"did you mean '{close[0]}'?" if close else ""
    return _diag(
        doc, f"spec/{kind.replace('_', '-')}", path, got=_describe(value), expected=expected, hint=hint, at_key=at_key
    )


def _expected(error: ErrorDetails, description: str) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "literal_error":
        return f"one of {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == NAME_PATTERN:
            return _NAME_HINT
        # a field's description says in words what its pattern says in regex
        return (
            description[0].lower() + description[1:].rstrip(".")
            if description
            else f"text matching {ctx.get('pattern')}"
        )
    if kind.endswith(("_type", "_parsing")):
        return {
            "string": "a string",
            "int": "a whole number",
            "float": "a number",
            "bool": "true or false",
            "dict": "a mapping",
            "list": "a list",
            "model": "a mapping",
        }.get(kind.split("_")[0], kind.replace("_", " "))
    bounds = {
        "too_short": lambda: f"at least {ctx['min_length']} item{'s' if ctx['min_length'] != 1 else ''}",
        "too_long": lambda: f"at most {ctx['max_length']} item{'s' if ctx['max_length'] != 1 else ''}",
        "string_too_short": lambda: f"text of at least {ctx['min_length']} characters",
        "string_too_long": lambda: f"text of at most {ctx['max_length']} characters",
        "greater_than": lambda: f"a number greater than {ctx['gt']}",
        "greater_than_equal": lambda: f"a number of at least {ctx['ge']}",
        "less_than": lambda: f"a number less than {ctx['lt']}",
        "less_than_equal": lambda: f"a number of at most {ctx['le']}",
    }
    if kind in bounds:
        return bounds[kind]()
    # value_error and the rest: pydantic's own words, lowercased
    message = error["msg"].removeprefix("Value error, ")
    return message[0].lower() + message[1:] if message else kind


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        return f"a list of {len(value)}" if value else "an empty list"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    return f"{type(value).__name__} {value!r}"


def _is_union_tag(part: str | int) -> bool:
    # pydantic adds the union member's type to the loc ('str', 'function-after[...]')
    return isinstance(part, str) and (part in {"str", "int", "float", "bool"} or "[" in part)


def _document_loc(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """``loc`` without pydantic's union-member tags: a part the document has is a key, never a tag."""
    kept: list[str | int] = []
    for part in loc:
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if in_list or (isinstance(data, dict) and part in data):
            data = data[part]
        elif _is_union_tag(part):
            continue
        else:
            data = None  # a required key that is missing: nothing below it to walk
        kept.append(part)
    return tuple(kept)


def _at(data: Any, path: FieldPath) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _value_at(data: Any, path: FieldPath) -> Any:
    """The document's value at ``path``, through mappings and lists alike (None when absent)."""
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def _schema_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> dict[str, Any]:
    """The JSON Schema node describing ``loc`` inside ``model`` ({} when unknown)."""
    schema = model.model_json_schema(by_alias=True)
    definitions = schema.get("$defs", {})
    node: dict[str, Any] = schema
    for part in loc:
        node = _resolve(node, definitions)
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            extra = node.get("additionalProperties")
            node = extra if isinstance(extra, dict) else {}
    return _resolve(node, definitions)


def _resolve(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "$ref" in node:
            node = definitions.get(node["$ref"].rsplit("/", 1)[-1], {})
        elif "anyOf" in node:
            node = next((option for option in node["anyOf"] if option.get("type") != "null"), {})
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = node["allOf"][0]
        else:
            return node
