"""Runs a DataCheck's expectations on a data frame with Great Expectations 1.x.

Used by the features worker (a sample during plan, everything before
materialization) and by training pipelines (the gate before training). Each
failure names the expectation, the column, how many rows broke it and a few of
the values, so the report reads without opening GX's own output. An expectation on
a column the data does not have is not run: its failure names the missing column
(``missingColumns``) and the columns the data has (``columns``).

Great Expectations (seconds to import) and pandas are imported by the check that
runs, not with this module: the engine imports it for ``describe``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_VALUES = 5
#: How many of the data's columns a missing-column report lists.
LISTED_COLUMNS = 40


def suite(expectations: list[dict[str, Any]], now: datetime | None = None) -> list[Any]:
    """GX expectation objects for the spec's expectations (camelCase dicts, as written in YAML)."""
    import great_expectations as gx

    now = now or datetime.now(UTC)
    built: list[Any] = []
    for e in expectations:
        kind = e["expect"]
        if kind == "notNull":
            built.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=e["column"]))
        elif kind == "between":
            built.append(
                gx.expectations.ExpectColumnValuesToBeBetween(
                    column=e["column"], min_value=e.get("min"), max_value=e.get("max")
                )
            )
        elif kind == "inSet":
            built.append(gx.expectations.ExpectColumnValuesToBeInSet(column=e["column"], value_set=e["values"]))
        elif kind == "unique":
            if len(e["columns"]) == 1:
                built.append(gx.expectations.ExpectColumnValuesToBeUnique(column=e["columns"][0]))
            else:
                built.append(gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=e["columns"]))
        elif kind == "fresh":
            oldest = now - timedelta(hours=e["maxAgeHours"])
            built.append(gx.expectations.ExpectColumnMaxToBeBetween(column=e["column"], min_value=oldest))
        elif kind == "rowCount":
            built.append(gx.expectations.ExpectTableRowCountToBeBetween(min_value=e["min"], max_value=e.get("max")))
        else:  # the spec model admits nothing else
            raise ValueError(f"unknown expectation {kind!r}")
    return built


def validate(
    frame: pd.DataFrame, expectations: list[dict[str, Any]], now: datetime | None = None
) -> list[dict[str, Any]]:
    """The failed expectations, in spec order: ``index``, ``expectation``, ``column``, counts and sample values."""
    now = now or datetime.now(UTC)
    failures = []
    have = [str(c) for c in frame.columns]
    batch = None
    for index, spec in enumerate(expectations):
        named = [spec["column"]] if spec.get("column") else list(spec.get("columns", []))
        missing = [c for c in named if c not in have]
        if missing:
            failures.append(
                {
                    "index": index,
                    "expect": spec["expect"],
                    "expectation": _type(spec),
                    "column": ",".join(named),
                    "rows": len(frame),
                    "missingColumns": missing,
                    "columns": sorted(have),
                }
            )
            continue
        if spec["expect"] == "fresh":
            failures += _stale(frame, index, spec, now)
            continue
        batch = batch or _batch(frame)  # Great Expectations only when an expectation needs it
        (expectation,) = suite([spec], now)
        result = batch.validate(expectation)
        if result.success:
            continue
        detail = result.result or {}
        failures.append(
            {
                "index": index,
                "expect": spec["expect"],
                "expectation": expectation.expectation_type,
                "column": spec.get("column") or ",".join(spec.get("columns", [])),
                "rows": len(frame),
                "unexpectedCount": detail.get("unexpected_count"),
                "observed": _plain(detail.get("observed_value")),
                "samples": [_plain(v) for v in (detail.get("partial_unexpected_list") or [])[:SAMPLE_VALUES]],
                "error": (result.exception_info or {}).get("exception_message") if not result.result else None,
            }
        )
    return failures


#: The Great Expectations expectation each kind runs as (``fresh`` is computed here: see ``_stale``).
TYPES = {
    "notNull": "expect_column_values_to_not_be_null",
    "between": "expect_column_values_to_be_between",
    "inSet": "expect_column_values_to_be_in_set",
    "unique": "expect_column_values_to_be_unique",
    "fresh": "expect_column_max_to_be_between",
    "rowCount": "expect_table_row_count_to_be_between",
}


def _type(spec: dict[str, Any]) -> str:
    if spec["expect"] == "unique" and len(spec["columns"]) > 1:
        return "expect_compound_columns_to_be_unique"
    return TYPES[spec["expect"]]


def _batch(frame: pd.DataFrame) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return (
        context.data_sources.add_pandas("data")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )


def _stale(frame: pd.DataFrame, index: int, spec: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """``fresh``: the column's newest value is at most ``maxAgeHours`` old at ``now``.

    GX's expect_column_max_to_be_between with that minimum, computed directly: the only expectation
    that reads the clock, so the features plane checks it on every plan and keeps the others' results
    by the digest of the data.
    """
    import pandas as pd

    newest = pd.to_datetime(frame[spec["column"]], utc=True).max() if len(frame) else None
    if newest is not None and not pd.isna(newest) and newest >= now - timedelta(hours=spec["maxAgeHours"]):
        return []
    observed = None if newest is None or pd.isna(newest) else _plain(newest)
    failure = {"index": index, "expect": "fresh", "expectation": TYPES["fresh"], "column": spec["column"]}
    return [failure | {"rows": len(frame), "unexpectedCount": None, "observed": observed, "samples": [], "error": None}]


def describe(failure: dict[str, Any]) -> str:
    """One line for a report: what broke, how often, and what the bad values look like."""
    what = f"{failure['expectation']} on '{failure['column']}'" if failure["column"] else failure["expectation"]
    if failure.get("missingColumns"):
        missing = ", ".join(f"'{c}'" for c in failure["missingColumns"])
        noun = "column" if len(failure["missingColumns"]) == 1 else "columns"
        verb = "is" if len(failure["missingColumns"]) == 1 else "are"
        columns = failure.get("columns") or []
        listed = ", ".join(columns[:LISTED_COLUMNS]) + (
            f", … ({len(columns)} in all)" if len(columns) > LISTED_COLUMNS else ""
        )
        return f"{what}: {noun} {missing} {verb} missing from the data (its columns: {listed or 'none'})"
    if failure.get("unexpectedCount") is not None:
        found = f"{failure['unexpectedCount']} of {failure['rows']} rows unexpected"
    elif failure.get("observed") is not None:
        found = f"observed {failure['observed']}"
    else:
        found = failure.get("error") or "failed"
    samples = f" (e.g. {', '.join(map(str, failure['samples']))})" if failure.get("samples") else ""
    return f"{what}: {found}{samples}"


def _plain(value: Any) -> Any:
    # NaN, timestamps and numpy scalars become JSON-friendly text or numbers.
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return "null"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
