"""Files a plane reads from the repository are regular files inside it: links are refused unread.

A pull request can add a symbolic link anywhere: ``platform/teams/env.yaml`` pointing at
``/proc/self/environ``, a ``pipeline.py`` at a secrets file, a Feast repo folder at ``~/.aws``.
Whatever reads it (the spec loader, KFP's compiler, Feast) may echo its content into CI logs,
annotations and PR comments. So every file Shipyard reads from a repository is checked first,
at the link's own path, without reading it. Links pointing inside the repository are refused
too: the rule is simply "no links", since a reviewer sees a link's target path, not its content.
"""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.sdk.model import Diagnostic, SourcePosition

_SHOWN = 200  # characters of a link's in-repository target a message may show


def linked(root: Path, path: Path) -> Diagnostic | None:
    """Why ``path`` (under ``root``) is not a regular file inside the repository, or None when it is.

    Only the part of ``path`` below ``root`` counts: a checkout reached through a link is fine.
    Nothing is read; the message says where a link points only when that is inside the repository
    (its repo-relative path), since a path outside it can itself be private.
    """
    parts = path.relative_to(root).parts
    for depth in range(1, len(parts) + 1):
        step = root.joinpath(*parts[:depth])
        if step.is_symlink():
            return _refused(Path(os.path.realpath(root)), step, Path(*parts[:depth]).as_posix())
    # No step below the root is a link, so the path resolves inside the repository: resolving it again
    # (a realpath per file, a large share of a 500-team plan) would only re-check what a later swap,
    # between this check and the read, could undo anyway.
    return None


def links_under(root: Path, folder: Path) -> list[Diagnostic]:
    """Every link at or below ``folder`` (under ``root``), one finding each; the folder's content is not read.

    For a plane that hands a whole folder to a library (a pipeline's modules to KFP, a team's
    Feast repository to Feast), which would follow a link anywhere inside it.
    """
    above = linked(root, folder)
    if above is not None or not folder.is_dir():
        return [above] if above is not None else []
    found = []
    for where, folders, files in os.walk(folder):  # never follows a linked folder: it is listed, not entered
        for name in sorted([*folders, *files]):
            path = Path(where, name)
            if path.is_symlink():
                found.append(_refused(Path(os.path.realpath(root)), path, path.relative_to(root).as_posix()))
    return found


def _refused(real_root: Path, link: Path, display: str) -> Diagnostic:
    target = Path(os.path.realpath(link))  # never raises, loops included
    inside = target.relative_to(real_root).as_posix() if target.is_relative_to(real_root) else None
    where = "outside the repository" if inside is None else f"to {_clip(inside)}"
    return Diagnostic.mismatch(
        "spec/symlink",
        got=f"a symbolic link {where}",
        expected="a regular file inside the repository",
        position=SourcePosition(display),
        hint="replace the link with the file itself",
    )


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
