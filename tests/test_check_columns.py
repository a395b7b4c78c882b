"""A DataCheck expectation on a column the data does not have says so: the column, where, and what the data has."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from conftest import Result, edit, example_repo
from shipyard.planes.features.checks import describe, validate

CHECK = "features/fraud/checks/user-stats.yaml"


def test_a_missing_column_is_named_with_the_columns_the_data_has(
    shipyard: Callable[..., Result], tmp_path: Path
) -> None:
    example = example_repo(tmp_path)
    assert shipyard("seed", repo=example).code == 0
    edit(example, CHECK, "{expect: between, column: foreign_ratio_7d,", "{expect: between, column: foreign_share_7d,")
    line = (example / CHECK).read_text().splitlines().index(
        "    - {expect: between, column: foreign_share_7d, min: 0, max: 1}"
    ) + 1

    result = shipyard("plan", "--target", "local", repo=example)
    assert result.code == 1
    report = result.err
    assert f"{CHECK}:{line}:" in report  # the expectation's own line
    assert "column 'foreign_share_7d' is missing from the data" in report
    columns = report.split("(its columns: ", 1)[1].split(")", 1)[0].split(", ")  # the columns the data does have
    assert {"user_id", "amount_mean_7d", "foreign_ratio_7d"} <= set(columns)
    assert "the data breaks this expectation" not in report


def test_missing_columns_of_a_compound_expectation() -> None:
    frame = pd.DataFrame({"user_id": [1, 2], "event_timestamp": pd.to_datetime(["2026-01-01", "2026-01-02"])})
    [failure] = validate(frame, [{"expect": "unique", "columns": ["user_id", "day"]}])
    assert failure["missingColumns"] == ["day"]
    assert describe(failure) == (
        "expect_compound_columns_to_be_unique on 'user_id,day': column 'day' is missing from the data"
        " (its columns: event_timestamp, user_id)"
    )
    assert validate(frame, [{"expect": "notNull", "column": "user_id"}]) == []
