"""One error tree: the drawing in shipyard.sdk.errors is the real class tree, and exit codes follow it."""

from __future__ import annotations

import importlib
import re

import pytest

from shipyard.sdk import errors

#: Modules that define errors of their own; importing them makes their classes known.
DEFINING = [
    "shipyard.sdk.worker",
    "shipyard.planes.features.checks_report",
    "shipyard.planes.models.promotion",
]


def drawn() -> dict[str, str | None]:
    """Each class in the docstring's tree, with its parent (None for the root)."""
    doc = errors.__doc__
    assert doc is not None
    tree = doc.split("::", 1)[1]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in tree.splitlines():
        match = re.match(r"^[\s│├└─]*([A-Z]\w+)\s{2,}\S", line)
        if match is None:
            continue
        indent = len(line) - len(line.lstrip(" │├└─"))
        name = match.group(1)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((indent, name))
    return parents


def real() -> dict[str, str | None]:
    for module in DEFINING:
        importlib.import_module(module)
    found: dict[str, str | None] = {"ShipyardError": None}
    todo = [errors.ShipyardError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("shipyard."):
                found[sub.__name__] = cls.__name__
                todo.append(sub)
    return found


def test_the_drawn_tree_is_the_class_tree() -> None:
    assert drawn() == real()


@pytest.mark.parametrize("name", sorted(real()))
def test_exit_codes_follow_the_tree(name: str) -> None:
    cls = next(c for c in _classes() if c.__name__ == name)
    expected = 1 if issubclass(cls, errors.UserError) else 3
    assert cls.exit_code == expected


def test_a_message_and_its_hint_print_as_one() -> None:
    error = errors.StalePlanError("the plan is stale", hint="plan again")
    assert str(error) == "the plan is stale\nhint: plan again"
    assert str(errors.TransientError("throttled")) == "throttled"
    assert isinstance(errors.TransientError("x"), errors.ShipyardError)
    assert issubclass(errors.ChangesFailed, errors.ApplyError)


def _classes() -> list[type]:
    real()
    found, todo = [], [errors.ShipyardError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found
