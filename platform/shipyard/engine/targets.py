"""Targets a plan compares against: ``base:<rev>``, ``local`` or a cloud environment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shipyard.sdk.errors import UserError
from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.planes import STATE_DIR, Target, local_state_dir
from shipyard.sdk.platform import ENVIRONMENT

_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


@dataclass(frozen=True)
class TargetRef:
    """A parsed ``--target`` value."""

    name: str
    kind: Literal["base", "local", "environment"]
    revision: str = ""

    def require_declared(self, specs: SpecSet) -> None:
        """Refuse an environment no Environment spec declares, before any plane pins or observes it.

        ``local`` and ``base:<rev>`` need no spec.
        """
        if self.kind != "environment" or specs.named(ENVIRONMENT.name, self.name) is not None:
            return
        known = sorted(spec.name for spec in specs.of_kind(ENVIRONMENT.name))
        declared = ", ".join(known) if known else "none yet"
        raise UserError(
            f"unknown environment '{self.name}' (--target)",
            hint=f"declared environments (platform/environments/*.yaml): {declared}; or 'local', or base:<rev>; "
            f"to add one, write platform/environments/{self.name}.yaml (kind: Environment)",
        )

    def resolve(self, root: Path) -> Target:
        """The Target planes observe and apply to (never a base revision)."""
        if self.kind == "base":
            raise UserError(
                f"cannot apply to '{self.name}': a git revision is only a baseline to plan against",
                hint="apply to 'local' or an environment",
            )
        state = local_state_dir(root) if self.kind == "local" else root / STATE_DIR / "targets" / self.name
        return Target(self.name, self.kind, root, state)


def parse_target(text: str) -> TargetRef:
    if text == "local":
        return TargetRef("local", "local")
    if text.startswith("base:"):
        revision = text.removeprefix("base:")
        if not revision or revision.startswith("-"):
            raise UserError(
                f"got target '{text}', expected base:<git revision>", hint="e.g. base:origin/main or base:HEAD~1"
            )
        return TargetRef(text, "base", revision)
    if _ENVIRONMENT.match(text):
        return TargetRef(text, "environment")
    raise UserError(
        f"got target '{text}', expected 'local', 'base:<rev>' or an environment name (dev, staging, prod)",
    )
