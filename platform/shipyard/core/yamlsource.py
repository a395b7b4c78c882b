"""Reads YAML into plain data while remembering where every node was written.

Stricter than ``yaml.safe_load`` on purpose, because specs are reviewed input
that drives production: duplicate keys, non-standard tags (``!!python/...``),
merge keys and alias expansion bombs are errors, each reported with its
1-based line and column. Nothing here raises for bad input; problems come
back as Diagnostics, all of them, so the user fixes everything in one pass.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from shipyard.sdk.model import Diagnostic, FieldPath, SourcePosition, dotted

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Generous for a spec, tiny for a "billion laughs": an alias expanding past this stops.
MAX_NODES = 20_000
MAX_DEPTH = 64
MAX_FILE_BYTES = 1024 * 1024
#: The most of a value or key a message quotes; the source line itself is windowed when rendered.
MAX_QUOTED = 60

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")}
_MAP_TAG = f"{_TAG}map"
_SEQ_TAG = f"{_TAG}seq"
_MERGE_TAG = f"{_TAG}merge"


@dataclass(frozen=True)
class YamlDocument:
    """One YAML document as plain data, with the position of each value and key."""

    file: str
    index: int
    data: Any
    values: dict[FieldPath, SourcePosition]
    keys: dict[FieldPath, SourcePosition]
    lines: tuple[str, ...] = field(repr=False)

    @property
    def start(self) -> SourcePosition:
        return self.values.get((), SourcePosition(self.file))

    def position(self, path: FieldPath, *, at_key: bool = False) -> SourcePosition:
        """Position of ``path`` or of its nearest written ancestor (for a missing key)."""
        table = self.keys if at_key else self.values
        if path in table:
            return table[path]
        for cut in range(len(path) - 1, -1, -1):
            if path[:cut] in self.values:
                return self.values[path[:cut]]
        return self.start

    def snippet(self, position: SourcePosition) -> str | None:
        return _line(self.lines, position.line)


def clip(text: str, limit: int = MAX_QUOTED) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis: messages never echo a whole long value."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_yaml(path: Path, display: str) -> tuple[list[YamlDocument], list[Diagnostic]]:
    """Every non-empty document in ``path``; ``display`` is the name used in messages."""
    raw = path.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        return [], [
            Diagnostic.mismatch(
                "yaml/too-large",
                got=f"{len(raw)} bytes",
                expected=f"at most {MAX_FILE_BYTES} bytes",
                position=SourcePosition(display),
                hint="split the file",
            )
        ]
    documents, problems = _parsed(raw, display)
    return list(documents), list(problems)


@functools.lru_cache(maxsize=16_384)
def _parsed(raw: bytes, display: str) -> tuple[tuple[YamlDocument, ...], tuple[Diagnostic, ...]]:
    """``parse_yaml``, once per file content: a base revision's plan reads thousands of files unchanged at head."""
    documents, problems = parse_yaml(raw, display)
    return tuple(documents), tuple(problems)


def parse_yaml(raw: bytes, file: str) -> tuple[list[YamlDocument], list[Diagnostic]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return [], [_not_utf8(raw, error, file)]
    lines = tuple(text.splitlines())
    documents: list[YamlDocument] = []
    diagnostics: list[Diagnostic] = []
    try:
        for index, node in enumerate(_compose_all(text)):
            if _is_empty(node):
                continue
            builder = _Builder(file, lines)
            data = builder.build(node)
            diagnostics.extend(builder.diagnostics)
            if not builder.diagnostics:
                documents.append(YamlDocument(file, index, data, builder.values, builder.keys, lines))
    except yaml.MarkedYAMLError as error:
        diagnostics.append(_syntax_error(error, file, lines))
    except yaml.reader.ReaderError as error:
        diagnostics.append(_reader_error(error, text, file, lines))
    except yaml.YAMLError as error:  # pragma: no cover - every parser error is one of the above
        diagnostics.append(Diagnostic("yaml/syntax", f"invalid YAML: {error}", SourcePosition(file)))
    except RecursionError:
        diagnostics.append(
            Diagnostic.mismatch(
                "yaml/too-deep",
                got="nesting deeper than the parser can follow",
                expected=f"at most {MAX_DEPTH} levels",
                position=SourcePosition(file),
            )
        )
    if not documents and not diagnostics:
        diagnostics.append(
            Diagnostic.mismatch(
                "yaml/empty-file",
                got="an empty file",
                expected="at least one YAML document",
                position=SourcePosition(file),
                hint="add a spec or delete the file",
            )
        )
    return documents, diagnostics


def _compose_all(text: str) -> Iterator[Node]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield node
    finally:
        loader.dispose()


def _is_empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == f"{_TAG}null" and node.value in ("", "~", "null")


class _StopDocument(Exception):
    """A document too large or deep to continue with; carries its Diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic


class _Builder:
    """Turns one composed node tree into plain data plus position tables."""

    def __init__(self, file: str, lines: tuple[str, ...]) -> None:
        self.file = file
        self.lines = lines
        self.values: dict[FieldPath, SourcePosition] = {}
        self.keys: dict[FieldPath, SourcePosition] = {}
        self.diagnostics: list[Diagnostic] = []
        self._count = 0
        self._constructor = yaml.SafeLoader("")

    def build(self, node: Node) -> Any:
        try:
            return self._node(node, (), 0)
        except _StopDocument as stop:
            self.diagnostics.append(stop.diagnostic)
            return None

    def _position(self, node: Node) -> SourcePosition:
        mark = node.start_mark
        return SourcePosition(self.file, mark.line + 1, mark.column + 1)

    def _fail(self, rule: str, node: Node, path: FieldPath, *, got: str, expected: str, hint: str = "") -> Diagnostic:
        position = self._position(node)
        return Diagnostic.mismatch(
            rule,
            got=got,
            expected=expected,
            hint=hint,
            position=position,
            key_path=dotted(path) if path else "",
            snippet=_line(self.lines, position.line),
        )

    def _node(self, node: Node, path: FieldPath, depth: int) -> Any:
        self._count += 1
        if self._count > MAX_NODES:
            raise _StopDocument(
                self._fail(
                    "yaml/too-many-nodes",
                    node,
                    path,
                    got=f"more than {MAX_NODES} nodes after expanding aliases",
                    expected="a spec of ordinary size",
                    hint="anchors and aliases multiply content; write values out instead",
                )
            )
        if depth > MAX_DEPTH:
            raise _StopDocument(
                self._fail(
                    "yaml/too-deep",
                    node,
                    path,
                    got=f"nesting deeper than {MAX_DEPTH} levels",
                    expected="a flatter document",
                    hint="a recursive alias (&a ... *a) also causes this",
                )
            )
        self.values.setdefault(path, self._position(node))
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            if not self._tag_ok(node, path, {_SEQ_TAG}):
                return None
            return [self._node(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: FieldPath, depth: int) -> dict[str, Any] | None:
        if not self._tag_ok(node, path, {_MAP_TAG}):
            return None
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self.diagnostics.append(
                    self._fail(
                        "yaml/merge-key",
                        key_node,
                        path,
                        got="a merge key '<<'",
                        expected="plain keys",
                        hint="write the merged keys out; merge keys hide what a spec contains",
                    )
                )
                continue
            if not isinstance(key_node, ScalarNode):
                self.diagnostics.append(
                    self._fail(
                        "yaml/complex-key", key_node, path, got="a mapping or list as a key", expected="a string key"
                    )
                )
                continue
            key = str(key_node.value)  # as written: `on:` stays "on", not True
            if key in out:
                first = self.keys[(*path, key)]
                self.diagnostics.append(
                    self._fail(
                        "yaml/duplicate-key",
                        key_node,
                        (*path, key),
                        got=f"key '{clip(key)}' a second time",
                        expected="each key once",
                        hint=f"first defined at line {first.line}; remove one of them",
                    )
                )
                continue
            self.keys[(*path, key)] = self._position(key_node)
            out[key] = self._node(value_node, (*path, key), depth + 1)
        return out

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        if not self._tag_ok(node, path, _SCALAR_TAGS):
            return None
        if node.tag in (f"{_TAG}str", f"{_TAG}timestamp"):
            return str(node.value)  # timestamps stay text: specs are JSON-able
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as error:
            self.diagnostics.append(
                self._fail(
                    "yaml/bad-scalar",
                    node,
                    path,
                    got=repr(clip(str(node.value))),
                    expected=node.tag.replace(_TAG, "!!"),
                    hint=clip(str(error), 200),
                )
            )
            return None

    def _tag_ok(self, node: Node, path: FieldPath, allowed: set[str]) -> bool:
        if node.tag in allowed:
            return True
        self.diagnostics.append(
            self._fail(
                "yaml/unsupported-tag",
                node,
                path,
                got=f"the tag '{clip(node.tag.replace(_TAG, '!!'))}'",
                expected="plain YAML values (strings, numbers, booleans, null, lists, mappings)",
                hint="remove the tag; Shipyard never constructs objects from YAML",
            )
        )
        return False


def _line(lines: tuple[str, ...], number: int) -> str | None:
    return lines[number - 1] if 0 < number <= len(lines) else None


def _syntax_error(error: yaml.MarkedYAMLError, file: str, lines: tuple[str, ...]) -> Diagnostic:
    mark = error.problem_mark or error.context_mark
    position = SourcePosition(file, mark.line + 1, mark.column + 1) if mark else SourcePosition(file)
    problem = " ".join(part for part in (error.context, error.problem) if part)
    return Diagnostic.mismatch(
        "yaml/syntax",
        got=f"a YAML syntax error ({clip(problem, 200)})",
        expected="well-formed YAML",
        position=position,
        hint="check indentation, colons and quoting here",
        snippet=_line(lines, position.line),
    )


def _reader_error(error: yaml.reader.ReaderError, text: str, file: str, lines: tuple[str, ...]) -> Diagnostic:
    before = text[: error.position]
    line = before.count("\n") + 1
    column = error.position - (before.rfind("\n") + 1) + 1
    character = error.character if isinstance(error.character, str) else chr(error.character)
    return Diagnostic.mismatch(
        "yaml/control-character",
        got=f"the control character {character!r}",
        expected="printable text",
        position=SourcePosition(file, line, column),
        hint="remove it; it is often a stray paste from a terminal",
        snippet=_line(lines, line),
    )


def _not_utf8(raw: bytes, error: UnicodeDecodeError, file: str) -> Diagnostic:
    start = error.start
    line = raw[:start].count(b"\n") + 1
    column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
    return Diagnostic.mismatch(
        "yaml/encoding",
        got=f"the byte 0x{raw[start]:02x}, which is not UTF-8",
        expected="a UTF-8 text file",
        position=SourcePosition(file, line, column),
        hint="re-save the file as UTF-8",
    )
