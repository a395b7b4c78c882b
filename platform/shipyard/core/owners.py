"""CODEOWNERS as GitHub reads it: the last line whose pattern matches a path owns it.

Pure: parsing text and matching paths. Used by ``shipyard owners`` (whose review a change
needs) and by the repository's own rules on ownership (``policies/repository.py``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Where GitHub looks for the file, in its order: the first one found is the one in force.
LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")


@dataclass(frozen=True)
class Line:
    number: int
    glob: str
    owners: tuple[str, ...]
    text: str
    #: The folder or file an anchored pattern without wildcards names (``features/fraud``), else None.
    literal: str | None = None

    def matches(self, path: str) -> bool:
        """Whether this line's pattern matches the repo-relative ``path`` (a file, or a folder's content)."""
        if self.literal is not None:  # most lines of a large file: no regex to build or run
            return path == self.literal or path.startswith(self.literal + "/")
        return pattern(self.glob).match(path) is not None


class Owners:
    """A CODEOWNERS file's lines, indexed so that finding a path's owner does not try every line.

    A repository of 500 teams has some 2,000 lines and 2,000 team paths; most lines name one path
    literally, and only those naming a prefix of the path, or holding a wildcard, can match it.
    """

    def __init__(self, lines: Sequence[Line]) -> None:
        self.lines = tuple(lines)
        self._wild = tuple(line for line in self.lines if line.literal is None)
        self._literal: dict[str, list[Line]] = {}
        for line in self.lines:
            if line.literal is not None:
                self._literal.setdefault(line.literal, []).append(line)

    def last(self, path: str) -> Line | None:
        """The line that owns ``path``: the last one whose pattern matches (GitHub's rule)."""
        parts = path.split("/")
        prefixes = ("/".join(parts[:n]) for n in range(1, len(parts) + 1))
        candidates = [*self._wild, *(line for p in prefixes for line in self._literal.get(p, ()))]
        matching = [line for line in candidates if line.matches(path)]
        return max(matching, key=lambda line: line.number, default=None)


@functools.lru_cache(maxsize=4)
def parse_codeowners(text: str) -> Owners:
    """The file's lines, indexed; the same text is parsed once (the ownership rules and `owners` share it)."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        content = raw.split(" #", 1)[0].strip()
        if not content or content.startswith("#"):
            continue
        glob, *owners = content.split()
        anchored = "/" in glob.rstrip("/")
        literal = glob.strip("/") if anchored and not any(c in glob for c in "*?[\\!") else None
        lines.append(Line(number, glob, tuple(owners), raw, literal))
    return Owners(lines)


@functools.cache
def pattern(glob: str) -> re.Pattern[str]:
    """A CODEOWNERS (gitignore-style) pattern as a regex over repo-relative file paths."""
    anchored = "/" in glob.rstrip("/")
    body = glob.strip("/")
    regex = ""
    i = 0
    while i < len(body):
        if body.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif body.startswith("**", i):
            regex += ".*"
            i += 2
        elif body[i] == "*":
            regex += "[^/]*"
            i += 1
        elif body[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(body[i])
            i += 1
    prefix = "^" if anchored else "^(?:.*/)?"
    return re.compile(f"{prefix}{regex}(?:/.*)?$", re.S)


@dataclass(frozen=True)
class Review:
    """Whose review some files of a change need (no owners: nobody's), and the CODEOWNERS lines that say so."""

    owners: tuple[str, ...]
    lines: tuple[int, ...]
    files: tuple[str, ...]


def reviews(owners: Owners, paths: Sequence[str]) -> list[Review]:
    """The reviews ``paths`` need, one per set of owners, in the order of their first line; unowned paths last."""
    files: dict[tuple[str, ...], list[str]] = {}
    lines: dict[tuple[str, ...], set[int]] = {}
    for path in paths:
        line = owners.last(path)
        who = line.owners if line is not None else ()
        files.setdefault(who, []).append(path)
        if line is not None and who:
            lines.setdefault(who, set()).add(line.number)
    order = sorted((who for who in files if who), key=lambda who: min(lines[who]))
    found = [Review(who, tuple(sorted(lines[who])), tuple(files[who])) for who in order]
    return found + ([Review((), (), tuple(files[()]))] if () in files else [])
