"""Materialises another git revision of the repo, to compute its desired state."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shipyard.sdk.errors import UserError


@contextmanager
def checkout(root: Path, revision: str) -> Iterator[Path]:
    """A temporary tree holding ``revision``'s tracked files; removed afterwards.

    ``git archive`` is used rather than ``git worktree`` so that planning never
    writes into the repository's ``.git`` (CI checkouts may be read-only).
    """
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", what=revision)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit.strip()], cwd=root, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise UserError(f"cannot read revision '{revision}': {archive.stderr.decode(errors='replace').strip()}")
    with tempfile.TemporaryDirectory(prefix="shipyard-base-") as folder:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
        yield Path(folder)


def head_commit(root: Path) -> str:
    """The commit checked out at ``root`` ("" outside a git repository, or before its first commit)."""
    return commit_of(root, "HEAD")


def commit_of(root: Path, revision: str) -> str:
    """The commit ``revision`` names ("" when there is none)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _git(root: Path, *args: str, what: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise UserError("planning against base:<rev> needs git on PATH") from error
    if result.returncode != 0:
        raise UserError(
            f"git revision '{what}' not found in this repository",
            hint="fetch more history (actions/checkout with fetch-depth: 0) or check the name",
        )
    return result.stdout
