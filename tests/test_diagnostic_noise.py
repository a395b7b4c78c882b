"""One root cause, one error, first: a broken Team is not echoed as 'unknown team' by every spec of
the team, and a cross-field check points at the keys it is about, not at the spec's first line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, edit, example_repo

TEAM = "platform/teams/fraud.yaml"
MODEL = "models/fraud/fraud-scorer.yaml"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return example_repo(tmp_path)


def _headlines(result: Result) -> list[str]:
    """The first line of each finding in the text output, in the order printed."""
    assert result.code == 1, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    return [block.splitlines()[0] for block in result.err.strip().split("\n\n")[:-1]]


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("gpu: 4", "gpu: lots", f"{TEAM}:13:10: spec.quota.gpu"),  # the Team fails validation
        ("  name: fraud\n", "  name: fraud\n  nmae: x\n", f"{TEAM}:6:3: metadata.nmae"),  # its envelope does
        ("kind: Team", "kind: Teem", f"{TEAM}:3:7: kind"),  # it is no Team at all
        ("  quota:\n", "  quota: [\n", f"{TEAM}:"),  # the file is not YAML at all
    ],
)
def test_a_broken_team_is_one_error_not_one_per_spec_of_the_team(
    shipyard: Callable[..., Result], example: Path, old: str, new: str, where: str
) -> None:
    edit(example, TEAM, old, new)
    headlines = _headlines(shipyard("validate", repo=example))
    assert not [h for h in headlines if "spec/unknown-team" in h], headlines
    assert headlines[0].startswith(where), headlines
    assert all(h.startswith(f"{TEAM}:") for h in headlines), headlines


def test_a_team_with_no_file_is_still_unknown(shipyard: Callable[..., Result], example: Path) -> None:
    (example / TEAM).unlink()
    headlines = _headlines(shipyard("validate", repo=example))
    assert len(headlines) == 4, headlines
    assert all("got team 'fraud', expected an existing Team (recsys)" in h for h in headlines), headlines


def test_a_root_cause_comes_before_the_findings_that_depend_on_others(
    shipyard: Callable[..., Result], example: Path
) -> None:
    # features/ sorts before pipelines/: by position alone the unknown team would come first
    edit(example, "features/fraud/checks/transactions.yaml", "team: fraud", "team: fruad")
    edit(example, "pipelines/fraud/train/pipeline.yaml", '"0 3 * * *"', '"61 * * * *"')
    headlines = _headlines(shipyard("validate", repo=example))
    assert [h.split(":")[0] for h in headlines] == [
        "pipelines/fraud/train/pipeline.yaml",
        "features/fraud/checks/transactions.yaml",
    ], headlines
    assert "[spec/unknown-team]" in headlines[1]


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "min: 2\n    max: 4",
            "min: 5\n    max: 2",
            f"{MODEL}:20:3: spec.replicas:",
            "replicas.min (5) is more than replicas.max (2)",
        ),
        (
            "  replicas:\n    min: 2\n    max: 4",
            "  replicas: {min: 5, max: 2}",
            f"{MODEL}:20:3: spec.replicas:",
            "replicas.min (5) is more than replicas.max (2)",
        ),
        (
            "memory: 2Gi\n",
            "memory: 2Gi\n    gpu: 1\n",
            f"{MODEL}:17:3: spec.resources:",
            "resources.gpu needs resources.gpuPool",
        ),
        # checks across sub-models point at the spec itself, not at its first key
        ("runtime: mlflow", "runtime: custom", f"{MODEL}:7:1: spec:", "runtime 'custom' needs an image"),
    ],
)
def test_a_cross_field_check_points_at_the_keys_it_is_about(
    shipyard: Callable[..., Result], example: Path, old: str, new: str, where: str, message: str
) -> None:
    edit(example, MODEL, old, new)
    result = shipyard("validate", repo=example)
    headlines = _headlines(result)
    assert len(headlines) == 1, headlines
    assert headlines[0].startswith(where), headlines
    assert message in headlines[0]
    assert "registeredModel" not in result.err
