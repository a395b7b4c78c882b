"""Materialises another git revision of the repo, to compute its desired state."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shipyard.sdk.errors import UserError
from shipyard.sdk.store import private_dir

#: Trees of base commits kept (``checkout(keep=...)``): a pull request is planned against a few at a time.
KEPT_TREES = 4


@contextmanager
def checkout(root: Path, revision: str, keep: Path | None = None) -> Iterator[Path]:
    """A tree holding ``revision``'s tracked files.

    ``git archive`` is used rather than ``git worktree`` so that planning never writes into
    the repository's ``.git`` (CI checkouts may be read-only). Without ``keep`` the tree is
    temporary. With it, trees are kept there by commit: a commit's files never change, so the
    next plan against the same base (every push to a pull request) reads the tree already
    there instead of writing thousands of files and removing them again. A kept tree appears
    only once it is complete (extracted beside it, then renamed), and the ``KEPT_TREES`` used
    last stay.
    """
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", what=revision).strip()
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="shipyard-base-") as folder:
            _extract(root, commit, Path(folder))
            yield Path(folder)
        return
    tree = keep / commit
    if not tree.is_dir():
        private_dir(keep)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=keep))
        try:
            _extract(root, commit, partial)
            partial.rename(tree)
        except OSError:
            if not tree.is_dir():  # not another plan's tree, finished first: a real failure
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        _prune(keep)
    os.utime(tree)  # used now: the last to be pruned
    yield tree


def _extract(root: Path, commit: str, into: Path) -> None:
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=root, capture_output=True, check=False)
    if archive.returncode != 0:
        raise UserError(f"cannot read revision '{commit}': {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def _prune(keep: Path) -> None:
    trees = sorted((p for p in keep.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in trees[KEPT_TREES:]:
        shutil.rmtree(old, ignore_errors=True)  # an old tree another plan still reads is taken again next time


def changed_files(root: Path, base: str) -> list[str]:
    """Files that differ between ``base`` and the working tree (what a pull request from here changes),
    untracked ones included, renames as a deletion and an addition: both paths need their owners."""
    _git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", what=base)
    changed = _git(root, "diff", "--name-only", "--no-renames", "-z", base, what=base)
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", what=base)
    return sorted({name for name in (changed + untracked).split("\0") if name})


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
