"""The repository's shape: what DESIGN.md fixes at the top level."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT

TOP_LEVEL = ["infra", "platform", "pipelines", "features", "models", "policies", ".github", "tests"]
FILES = ["Pulumi.yaml", "pyproject.toml", "uv.lock", "README.md", "LICENSE", "Makefile", ".ci/run"]


def test_top_level_layout() -> None:
    missing = [name for name in TOP_LEVEL + FILES if not (REPO_ROOT / name).exists()]
    assert missing == []


def test_platform_is_not_a_package() -> None:
    assert not (REPO_ROOT / "platform" / "__init__.py").exists()


def test_import_platform_is_still_the_standard_library() -> None:
    # a fresh interpreter from the project's environment, started at the repo root
    code = "import shipyard, platform, sysconfig; print(platform.__file__); print(sysconfig.get_paths()['stdlib'])"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    platform_file, stdlib = out
    assert platform_file.startswith(stdlib), platform_file


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
