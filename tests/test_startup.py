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


#: What ``--help`` never needs: the renderer, the engine's planning and applying, and the
#: modules a plane's worker process imports (they pull in the heavy libraries).
NOT_FOR_HELP = {
    "rich",
    "shipyard.engine.planner",
    "shipyard.engine.apply",
    "shipyard.engine.up",
    "shipyard.planes.features.tasks",
    "shipyard.planes.pipelines.tasks",
}


def test_help_lists_plugin_verbs_without_loading_the_engine_or_worker_tasks() -> None:
    """``--help`` loads the plugins (to list the verbs they add), and nothing that plans or applies."""
    done = subprocess.run([sys.executable, "-c", PROBE, "--help"], capture_output=True, text=True, check=True)
    *help_lines, last = done.stdout.splitlines()
    modules = set(json.loads(last)["modules"])
    listed = {line.split()[0] for line in help_lines if line.startswith("  ") and line.strip()}
    assert {"seed", "compile", "promote", "rollback", "plan", "apply"} <= listed  # plugin verbs beside built-ins
    assert not NOT_FOR_HELP & modules, sorted(NOT_FOR_HELP & modules)
