"""`--help` and `validate` stay light: no plane's heavy library is imported on these paths."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

HEAVY = ["feast", "great_expectations", "mlflow", "kserve", "kfp", "pulumi", "pulumi_aws", "pandas", "sklearn"]
PROBE = """
import json, sys
from shipyard.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("args", [["--help"], ["--repo", str(REPO_ROOT), "validate"]], ids=["help", "validate"])
def test_no_heavy_imports(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["code"] == 0
    loaded = {name.split(".")[0] for name in report["modules"]}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_help_does_not_even_load_the_engine() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, "--help"], capture_output=True, text=True, check=True)
    modules = set(json.loads(done.stdout.splitlines()[-1])["modules"])
    assert not {"pydantic", "rich", "yaml", "shipyard.engine"} & modules
