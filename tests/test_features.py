"""The features plane: Feast objects from the repo, data checks on the data, specs that point at the line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, commit, edit, example_repo

CHECK = "features/fraud/checks/user-stats.yaml"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return example_repo(tmp_path)


def _changes(result: Result) -> dict[str, dict]:
    assert result.code in (0, 2), result.err
    return {c["key"]: c for c in json.loads(result.out)["plan"]["changes"] if c["action"] != "noop"}


def test_plan_against_base_shows_exactly_the_feature_viewedit(shipyard: Callable[..., Result], example: Path) -> None:
    edit(example, "features/fraud/features.py", "ttl=timedelta(days=2)", "ttl=timedelta(days=3)")
    commit(example, "keep features for three days")
    changes = _changes(shipyard("plan", "--target", "base:HEAD~1", "--format", "json", repo=example))
    assert list(changes) == ["features/fraud/FeatureView/user_stats"]
    [diff] = changes["features/fraud/FeatureView/user_stats"]["diffs"]
    assert (diff["path"], diff["before"], diff["after"]) == (["ttl"], "172800s", "259200s")


def test_a_new_feature_is_a_field_added_to_the_view_and_its_service(
    shipyard: Callable[..., Result], example: Path
) -> None:
    edit(
        example,
        "features/fraud/features.py",
        '        Field(name="foreign_ratio_7d"',
        '        Field(name="amount_min_7d", dtype=Float64),\n        Field(name="foreign_ratio_7d"',
    )
    commit(example, "a new feature")
    changes = _changes(shipyard("plan", "--target", "base:HEAD~1", "--format", "json", repo=example))
    assert set(changes) == {"features/fraud/FeatureView/user_stats", "features/fraud/FeatureService/fraud_scorer"}
    added = [d for d in changes["features/fraud/FeatureView/user_stats"]["diffs"] if d["after"] == "amount_min_7d"]
    assert added, changes["features/fraud/FeatureView/user_stats"]["diffs"]


def test_seeded_data_passes_its_checks_and_corrupted_data_is_stopped(
    shipyard: Callable[..., Result], example: Path
) -> None:
    assert shipyard("seed", repo=example).code == 0
    clean = shipyard("plan", "--target", "local", repo=example)
    assert clean.code == 0, clean.err
    assert "features/data-check" not in clean.err

    assert shipyard("seed", "--corrupt", "nulls", repo=example).code == 0
    broken = shipyard("plan", "--target", "local", repo=example)
    assert broken.code == 1
    report = broken.err
    # the column, the expectation, how many rows, and what the bad values look like, at the YAML line
    assert f"{CHECK}:" in report
    assert "expect_column_values_to_not_be_null on 'amount_mean_7d'" in report
    assert "rows unexpected (e.g. null" in report
    assert "expect_column_values_to_not_be_null on 'amount'" in report

    applied = shipyard("apply", "--target", "local", repo=example)
    assert applied.code == 1
    # nothing was written: no Feast registry, no online store, no model, no pipeline run
    local = example / ".shipyard/local"
    assert not (local / "features/fraud").exists()
    assert not (local / "mlflow").exists()
    assert not (local / "pipelines").exists()


def test_out_of_range_values_name_the_expectation(shipyard: Callable[..., Result], example: Path) -> None:
    assert shipyard("seed", "--corrupt", "range", repo=example).code == 0
    result = shipyard("plan", "--target", "local", repo=example)
    assert result.code == 1
    assert "expect_column_values_to_be_between on 'foreign_ratio_7d'" in result.err
    assert "(e.g. 3.5" in result.err
    assert "expect_column_values_to_be_between on 'amount'" in result.err


def test_stale_data_fails_freshness(shipyard: Callable[..., Result], example: Path) -> None:
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            str(example / "features/fraud/synthetic.py"),
            "--out",
            str(example / ".shipyard/local/data/fraud"),
            "--end",
            "2020-01-01T00:00:00",
        ],
        check=True,
    )
    result = shipyard("plan", "--target", "local", repo=example)
    assert result.code == 1
    assert "expect_column_max_to_be_between on 'event_timestamp'" in result.err


@pytest.mark.parametrize("end", ["2026-11-25T00:00:00", "2026-11-25T13:00:00"])
def test_synthetic_features_have_one_row_per_user_and_time_whatever_the_hour(tmp_path: Path, end: str) -> None:
    """At exactly midnight the newest day is yesterday: a day starting at the end time has no features."""
    import subprocess
    import sys

    import pandas as pd

    from conftest import REPO_ROOT

    subprocess.run(
        [sys.executable, str(REPO_ROOT / "features/fraud/synthetic.py"), "--out", str(tmp_path), "--end", end],
        check=True,
    )
    stats = pd.read_parquet(tmp_path / "user_stats.parquet")
    assert not stats.duplicated(["user_id", "event_timestamp"]).any()
    assert stats["event_timestamp"].max() == pd.Timestamp(end, tz="UTC")
    assert stats.groupby("user_id").size().eq(30).all()  # 30 days for every user


def test_missing_data_is_a_warning_that_says_how_to_seed(shipyard: Callable[..., Result], example: Path) -> None:
    result = shipyard("plan", "--target", "local", repo=example)
    assert result.code == 0
    assert "no data at" in result.err
    assert "shipyard seed" in result.err


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        (CHECK, "{expect: notNull, column: user_id}", "{expect: nonNull, column: user_id}", "spec.expectations[0]"),
        (CHECK, "min: 0, max: 1}", "min: 2, max: 1}", "'min' (2.0) is greater than 'max' (1.0)"),
        (CHECK, "path: user_stats.parquet", "path: user_stats.csv", "spec.path"),
        ("features/stores/local.yaml", "    type: sqlite\n    path:", "    type: sqlite\n    paths:", "spec.online"),
        ("features/stores/local.yaml", "type: sqlite", "type: cassandra", "spec.online.type"),
    ],
)
def test_bad_specs_point_at_the_line(
    shipyard: Callable[..., Result], example: Path, path: str, old: str, new: str, expected: str
) -> None:
    edit(example, path, old, new)
    result = shipyard("validate", repo=example)
    assert result.code == 1
    assert f"{path}:" in result.err
    assert expected in result.err
    assert "Traceback" not in result.err


def test_check_naming_an_unknown_feature_view(shipyard: Callable[..., Result], example: Path) -> None:
    edit(example, CHECK, "featureViews: [user_stats]", "featureViews: [user_stat]")
    result = shipyard("plan", "--target", "local", repo=example)
    assert result.code == 1
    assert "got 'user_stat', expected a feature view of features/fraud: user_stats" in result.err


def test_feature_code_that_fails_to_load_is_a_user_error(shipyard: Callable[..., Result], example: Path) -> None:
    edit(
        example, "features/fraud/features.py", "from feast.types import", "import not_a_module\nfrom feast.types import"
    )
    result = shipyard("plan", "--target", "local", repo=example)
    assert result.code == 1
    line = (example / "features/fraud/features.py").read_text().splitlines().index("import not_a_module") + 1
    assert f"features/fraud/features.py:{line}: the Feast definitions failed to load: ModuleNotFoundError" in result.err


def test_a_plan_from_git_alone_reads_no_local_data(shipyard: Callable[..., Result], example: Path) -> None:
    """A pull request's plan says nothing about a laptop's .shipyard/ data, nor prints a path of that machine."""
    result = shipyard("plan", "--target", "base:HEAD", "--format", "json", repo=example)
    assert result.code == 0, result.err
    found = json.loads(result.out)["diagnostics"]
    assert [d for d in found if d["rule"] == "features/data-check"] == []
    assert str(example) not in result.out + result.err
