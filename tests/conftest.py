"""Shared helpers: throwaway repositories, git, and running the CLI like a user does."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipyard.cli import main
from shipyard.engine.registry import Registry, discover

REPO_ROOT = Path(__file__).resolve().parents[1]


def team_yaml(name: str, *, gpu: int = 2, namespace: str | None = None, budget: float = 1000) -> str:
    ns = f"  namespace: {namespace}\n" if namespace else ""
    return (
        "apiVersion: shipyard.dev/v1alpha1\n"
        "kind: Team\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        '  owners: ["@owner"]\n'
        f"  group: {name}-ml\n"
        f"{ns}"
        "  costCenter: CC-1\n"
        "  quota:\n"
        f"    gpu: {gpu}\n"
        "    cpu: 8\n"
        "    memory: 32Gi\n"
        "  budget:\n"
        f"    monthlyUsd: {budget}\n"
    )


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def commit(root: Path, message: str = "change") -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with two valid teams, committed."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, {"platform/teams/fraud.yaml": team_yaml("fraud"), "platform/teams/search.yaml": team_yaml("search")})
    commit(root, "teams")
    return root


def edit(root: Path, path: str, old: str, new: str) -> None:
    """Replace ``old`` (which must be there) with ``new`` in one file of a repo."""
    file = root / path
    text = file.read_text()
    assert old in text, f"{old!r} not in {path}"
    file.write_text(text.replace(old, new))


def team_files(team: str) -> set[str]:
    """Every file the team template bakes for ``team`` (what `shipyard new-team` adds besides CODEOWNERS)."""
    ident = team.replace("-", "_")
    return {
        f"features/{team}/.feastignore",
        f"features/{team}/features.py",
        f"features/{team}/synthetic.py",
        f"features/{team}/checks/transactions.yaml",
        f"features/{team}/checks/user-stats.yaml",
        f"pipelines/{team}/train/pipeline.py",
        f"pipelines/{team}/train/pipeline.yaml",
        f"models/{team}/{team}-scorer.yaml",
        f"platform/teams/{team}.yaml",
        f"platform/teams/{team}.answers.json",
        f"tests/teams/test_{ident}.py",
    }


def example_repo(where: Path) -> Path:
    """The template's own example content (teams, features, pipelines) in a throwaway git repo."""
    root = where / "repo"
    for folder in ("platform/teams", "platform/environments", "platform/runtime", "features", "pipelines", "models"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    git(root, "init", "-q", "-b", "main")
    commit(root, "example content")
    return root


def whole_template(where: Path) -> Path:
    """The example repo plus the rest of the template: the infra program and its stacks, the repository's
    rules (policies/) and CODEOWNERS; the additions are left uncommitted, in the working tree."""
    root = example_repo(where)
    for folder in ("infra", "policies", ".github"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for stack in REPO_ROOT.glob("Pulumi*.yaml"):
        shutil.copy(stack, root / stack.name)
    return root


@pytest.fixture(scope="session")
def registry() -> Registry:
    return discover()


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def shipyard(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run the CLI in-process through its real entry point; returns exit code and output."""

    def run(*args: str, repo: Path | None = None) -> Result:
        argv = ["--repo", str(repo), *args] if repo is not None else list(args)
        capsys.readouterr()
        code = main(argv)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def journal_entries(root: Path) -> list[dict[str, Any]]:
    """Every journal entry of the local target of the repo at ``root``, oldest first (one object per file)."""
    folder = root / ".shipyard/local/journal"
    entries = [json.loads(p.read_text()) for p in folder.rglob("*.json")] if folder.exists() else []
    return sorted(entries, key=lambda entry: entry["at"])


def began(root: Path, key: str) -> bool:
    """Whether an apply of the local target of the repo at ``root`` has begun the change ``key``."""
    return any(e["event"] == "begin" and e.get("key") == key for e in journal_entries(root))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 and DynamoDB on a loopback port; boto3 (and so Feast) sent there, with no real credentials."""
    from moto.server import ThreadedMotoServer  # heavy: only the tests that use AWS load it

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto keeps its state per process, not per server: start each test from an empty account
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).close()
    for name, value in {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def cloud_state(aws: str) -> str:
    """The template environments' state buckets (spec.state.bucket), in moto: what applying to them needs."""
    import boto3

    s3 = boto3.client("s3")
    for environment in ("dev", "staging", "prod"):
        s3.create_bucket(Bucket=f"shipyard-{environment}-state")
    return aws
