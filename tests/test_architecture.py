"""The dependency rules of ARCHITECTURE.md, checked on the source: planes meet only through the SDK, the CLI
and the engine know no plane, core imports neither the engine nor a cloud library, nothing publishes values
through the process environment or the working directory."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "platform" / "shipyard"
PLANES = sorted(p.name for p in (PACKAGE / "planes").iterdir() if (p / "__init__.py").is_file())


def modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports (``from x import y`` gives x and x.y), with its line."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO_ROOT)}:{line}"


@pytest.mark.parametrize("plane", PLANES)
def test_no_plane_imports_another(plane: str) -> None:
    others = tuple(f"shipyard.planes.{p}" for p in PLANES if p != plane)
    found = [
        f"{where(path, line)} imports {name}"
        for path in modules(PACKAGE / "planes" / plane)
        for line, name in imported(path)
        if name.startswith(others) or name == "shipyard.planes"
    ]
    assert found == []


@pytest.mark.parametrize("layer", ["cli", "engine", "core", "sdk"])
def test_the_cli_engine_core_and_sdk_know_no_plane(layer: str) -> None:
    found = [
        f"{where(path, line)} imports {name}"
        for path in modules(PACKAGE / layer)
        for line, name in imported(path)
        if name.startswith("shipyard.planes")
    ]
    assert found == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("core", ("shipyard.engine", "shipyard.cli", "subprocess", "socket", "urllib", "httpx", "boto3", "pulumi")),
        ("sdk", ("shipyard.engine", "shipyard.cli", "shipyard.core")),
        ("engine", ("shipyard.cli",)),
    ],
)
def test_layers_depend_downwards_only(layer: str, forbidden: tuple[str, ...]) -> None:
    found = [
        f"{where(path, line)} imports {name}"
        for path in modules(PACKAGE / layer)
        for line, name in imported(path)
        if name.startswith(forbidden)
    ]
    assert found == []


def writes_process_state(path: Path) -> Iterator[str]:
    """``os.environ[...] = x``, ``os.environ.update/setdefault/pop(...)``, ``putenv`` and ``chdir``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                yield f"{where(path, node.lineno)}: {ast.unparse(node)}"
        if isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            if called in {f"os.environ.{verb}" for verb in ("update", "setdefault", "pop", "clear")}:
                yield f"{where(path, node.lineno)}: {called}(...)"
            if called in {"os.chdir", "chdir", "os.putenv"}:
                yield f"{where(path, node.lineno)}: {called}(...)"


def test_planes_write_no_process_state() -> None:
    assert [w for path in modules(PACKAGE / "planes") for w in writes_process_state(path)] == []


def test_the_only_process_state_shipyard_writes_is_the_cli_turning_telemetry_off() -> None:
    [found] = [w for path in modules(PACKAGE) for w in writes_process_state(path)]
    assert found.startswith("platform/shipyard/cli/app.py:")
    assert found.endswith("os.environ.setdefault(...)")
