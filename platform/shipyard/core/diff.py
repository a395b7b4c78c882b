"""A generic field-level diff over JSON-able Resource bodies. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipyard.sdk.model import FieldDiff, FieldOp, FieldPath

WILDCARD = "*"


def diff_bodies(before: Any, after: Any, ignore: Sequence[FieldPath] = ()) -> tuple[FieldDiff, ...]:
    """Every field that differs between two bodies, in a stable order.

    ``ignore`` holds path prefixes the server sets (``("metadata", "uid")``,
    ``("status",)``); ``"*"`` in a pattern matches any one key or index.
    Lists are compared position by position.
    """
    out: list[FieldDiff] = []
    _walk((), before, after, tuple(ignore), out)
    return tuple(out)


def is_ignored(path: FieldPath, ignore: Sequence[FieldPath]) -> bool:
    return any(
        len(pattern) <= len(path) and all(p in (WILDCARD, q) for p, q in zip(pattern, path, strict=False))
        for pattern in ignore
    )


def _walk(path: FieldPath, a: Any, b: Any, patterns: tuple[FieldPath, ...], out: list[FieldDiff]) -> None:
    if path and is_ignored(path, patterns):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys(), key=str):
            child = (*path, key)
            if key not in a:
                if not is_ignored(child, patterns):
                    out.append(FieldDiff(child, FieldOp.ADD, None, b[key]))
            elif key not in b:
                if not is_ignored(child, patterns):
                    out.append(FieldDiff(child, FieldOp.REMOVE, a[key], None))
            else:
                _walk(child, a[key], b[key], patterns, out)
    elif isinstance(a, list) and isinstance(b, list):
        for index in range(max(len(a), len(b))):
            child = (*path, index)
            if index >= len(a):
                out.append(FieldDiff(child, FieldOp.ADD, None, b[index]))
            elif index >= len(b):
                out.append(FieldDiff(child, FieldOp.REMOVE, a[index], None))
            else:
                _walk(child, a[index], b[index], patterns, out)
    elif not _same(a, b):
        out.append(FieldDiff(path, FieldOp.CHANGE, a, b))


def _same(a: Any, b: Any) -> bool:
    # 2 and 2.0 are the same quantity (Pulumi sends numbers as floats); True is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(type(a) is type(b) and a == b)
