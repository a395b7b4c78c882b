"""The features worker imports Feast, pandas and Great Expectations only for the tasks that use them.

A plan whose desired state is cached asks the worker only for each view's newest event (pyarrow):
importing Feast for it took seconds. Great Expectations loads when an expectation runs, and the
engine, which formats check failures, never loads pandas or GX.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
{code}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & {{"feast", "great_expectations", "pandas"}})))
"""


def loaded(code: str) -> list[str]:
    """Which of Feast, GX and pandas a fresh interpreter has imported after running ``code``."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(code=code)], capture_output=True, text=True, check=True)
    found: list[str] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_newest_events_are_read_without_feast(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    stamps = pa.array([1_700_000_000_000_000, 1_800_000_000_000_000], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"event_timestamp": stamps}), tmp_path / "events.parquet")

    code = f"""
from shipyard.planes.features import tasks
newest = tasks.task_newest({{"fraud/view": "events.parquet", "fraud/none": "missing.parquet"}}, {str(tmp_path)!r})
assert newest == {{"fraud/view": "2027-01-15T08:00:00+00:00", "fraud/none": None}}, newest
"""
    assert "feast" not in loaded(code)  # pandas may load: pyarrow converts time zones with it


def test_great_expectations_loads_when_an_expectation_runs(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"amount": [1.0, -2.0]}).to_parquet(tmp_path / "data.parquet")

    def check(data: str) -> str:
        path = str(tmp_path / data)
        return f"from shipyard.planes.features import tasks; tasks.task_check({path!r}, {expectations!r}, None)"

    expectations = [{"expect": "between", "column": "amount", "min": 0}]

    assert loaded(check("missing.parquet")) == []  # no data: nothing to run
    assert loaded(check("data.parquet")) == ["great_expectations", "pandas"]


def test_the_engine_formats_a_failure_without_pandas() -> None:
    failure = {"expectation": "expect_column_values_to_be_between", "column": "amount", "rows": 2, "unexpectedCount": 1}
    code = f"""
from shipyard.planes.features.checks import describe
assert describe({failure!r}) == "expect_column_values_to_be_between on 'amount': 1 of 2 rows unexpected"
"""
    assert loaded(code) == []


def test_the_registry_worker_imports_feast_without_typeguard_and_a_plan_keeps_it(tmp_path: Path) -> None:
    """Reading a registry needs none of typeguard's checks (over half of Feast's import); parsing team code does."""
    config = {"project": "fraud", "registry": {"path": str(tmp_path / "registry.db")}, "repo_path": str(tmp_path)}
    typed = """
import feast
try:
    feast.Entity(name=1, join_keys=["id"])  # a wrong type, as a team's definitions might give it
    print("unchecked")
except Exception as error:  # typeguard's TypeCheckError
    print(type(error).__name__)
"""
    observe = f"from shipyard.planes.features import tasks\nassert tasks.task_observe({{'fraud': {config!r}}}, False)"
    desired = "from shipyard.planes.features import tasks\ntasks.task_desired('.', {}, False)"

    def run(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code + typed], capture_output=True, text=True, check=True)
        return done.stdout.split()[-1]

    assert run(observe) == "unchecked"
    assert run(desired) == "TypeCheckError"
