"""What Shipyard prints names no folder of the machine it ran on: a PR comment, a CI artifact or an
annotation is read elsewhere, so paths are repo-relative, never the checkout's, a base revision's
temporary tree's (``git archive`` under the temp folder) or a home directory."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, commit, edit, example_repo

Run = Callable[..., Result]
FORMATS = ("text", "markdown", "json", "github")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example repo with one field changed in its last commit, so ``base:HEAD~1`` has an update."""
    root = example_repo(tmp_path_factory.mktemp("paths"))
    edit(root, "models/fraud/fraud-scorer.yaml", "    target: 20", "    target: 25")
    commit(root, "one field")
    return root


def machine_paths(repo: Path) -> list[str]:
    found = [str(repo), str(repo.resolve()), tempfile.gettempdir() + "/", "shipyard-base-"]
    return found + ([str(Path.home())] if Path.home() != Path("/") else [])


def assert_no_machine_path(repo: Path, what: str, *texts: str) -> None:
    for text in texts:
        leaked = [path for path in machine_paths(repo) if path in text]
        assert not leaked, f"{what} names {leaked}:\n{text}"


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(("-t", "base:HEAD~1"), id="base"),
        # unseeded, the local target's data checks report missing data under .shipyard/local/data
        pytest.param(("-t", "local", "--plane", "features"), id="local"),
    ],
)
def test_plan_output_has_only_repo_relative_paths(
    shipyard: Run, example: Path, tmp_path: Path, target: tuple[str, ...]
) -> None:
    saw_data_path = False
    for fmt in FORMATS:
        out = tmp_path / f"plan-{fmt}.json"
        result = shipyard("plan", *target, "--format", fmt, "--out", str(out), repo=example)
        assert result.code == 0, result.err
        assert_no_machine_path(example, f"plan {' '.join(target)} --format {fmt}", result.out, result.err)
        assert_no_machine_path(example, f"plan {' '.join(target)} --out", out.read_text())
        saw_data_path |= ".shipyard/local/data/fraud/" in result.out + result.err
    # the finding that named an absolute path still names the file, from the repository's root
    assert saw_data_path == (target[1] == "local")


def test_validate_and_render_output_has_only_repo_relative_paths(
    shipyard: Run, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    validated = shipyard("validate", repo=example)
    assert validated.code == 0, validated.err
    assert_no_machine_path(example, "validate", validated.out, validated.err)
    monkeypatch.chdir(example)  # --out as a user types it, relative: render prints it back as given
    rendered = shipyard("render", "--env", "dev", "--out", "deploy/dev", "--plane", "tenancy", repo=example)
    assert rendered.code == 0, rendered.err
    assert_no_machine_path(example, "render", rendered.out, rendered.err)
    written = [p.read_text() for p in (example / "deploy/dev").rglob("*") if p.is_file()]
    assert written
    assert_no_machine_path(example, "rendered manifests", *written)
