"""Team code (KFP pipeline modules, Feast definitions) runs during validate and plan without the engine's secrets.

On a pull request that code is the PR author's, and a CI runner holds credentials: the workers that
import it start with a scrubbed environment (``shipyard.sdk.worker.scrubbed_environment``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, commit, edit, example_repo

PLANTED = {
    "AWS_SECRET_ACCESS_KEY": "planted-aws-secret",
    "AWS_ACCESS_KEY_ID": "planted-aws-key-id",
    "AWS_SESSION_TOKEN": "planted-aws-session",
    "GITHUB_TOKEN": "planted-github-token",
    "MLFLOW_TRACKING_PASSWORD": "planted-mlflow-password",
    "MLFLOW_TRACKING_TOKEN": "planted-mlflow-token",
    "SOMETHING_TOKEN": "planted-something-token",
    "DB_PASSWORD": "planted-db-password",
    "MY_API_SECRET": "planted-api-secret",
    "KUBECONFIG": "/planted/kubeconfig",
    "PULUMI_ACCESS_TOKEN": "planted-pulumi",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://planted.example/oidc",
}


def _recorder(out: Path) -> str:
    """Python that writes the environment it runs with to ``out`` (one JSON object per import)."""
    return (
        "import json as _json, os as _os\n"
        f"with open({str(out)!r}, 'a') as _seen:\n"
        "    _seen.write(_json.dumps(dict(_os.environ)) + '\\n')\n"
    )


def _seen(out: Path) -> list[dict[str, str]]:
    assert out.is_file(), f"team code never ran (no {out})"
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    return PLANTED


def test_team_code_sees_no_secrets_during_validate_and_plan(
    shipyard: Callable[..., Result], tmp_path: Path, planted: dict[str, str]
) -> None:
    root = example_repo(tmp_path)
    pipeline_env, features_env = tmp_path / "pipeline-env.jsonl", tmp_path / "features-env.jsonl"
    edit(
        root,
        "pipelines/fraud/train/pipeline.py",
        "from kfp import dsl\n",
        "from kfp import dsl\n" + _recorder(pipeline_env),
    )
    edit(
        root,
        "features/fraud/features.py",
        "from datetime import timedelta\n",
        "from datetime import timedelta\n" + _recorder(features_env),
    )
    commit(root, "team code that records its environment")

    assert shipyard("validate", repo=root).code == 0
    for target in ("local", "base:HEAD"):
        result = shipyard("plan", "--target", target, repo=root)
        assert result.code in (0, 2), result.err

    for out in (pipeline_env, features_env):
        seen = _seen(out)
        for env in seen:
            leaked = {name for name, value in env.items() if value in planted.values() or name in planted}
            assert not leaked, f"{out.name}: team code saw {sorted(leaked)}"
            assert env.get("LANG") == "C.UTF-8"  # the harmless rest of the environment is kept
            assert "PATH" in env


def test_scrubbed_environment_keeps_an_allowlist() -> None:
    from shipyard.sdk.worker import scrubbed_environment

    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "TMPDIR": "/tmp",
        "USER": "me",
        "VIRTUAL_ENV": "/venv",
        "SHIPYARD_TELEMETRY": "x",
        **PLANTED,
        "AWS_REGION": "us-east-1",
        "GITHUB_ACTIONS": "true",
        "MLFLOW_TRACKING_USERNAME": "me",
        "SSH_AUTH_SOCK": "/tmp/agent",
    }
    scrubbed = scrubbed_environment(environ)
    assert set(scrubbed) >= {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "VIRTUAL_ENV"}
    for name in (*PLANTED, "AWS_REGION", "GITHUB_ACTIONS", "MLFLOW_TRACKING_USERNAME", "SSH_AUTH_SOCK"):
        assert name not in scrubbed
    assert environ["GITHUB_TOKEN"] == PLANTED["GITHUB_TOKEN"]  # pure: the argument is not changed
