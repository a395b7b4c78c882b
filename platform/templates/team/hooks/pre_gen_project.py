"""Refuse answers that break the repository's rules before anything is written.

Cookiecutter runs this with the rendered (empty) staging folder as the working directory;
the repository the team goes into is its parent, or `_target` when `shipyard new-team` bakes.
The rules are the repository's own (shipyard/core/teams.py), loaded from that repository.
"""

import json
import os
import sys
from pathlib import Path

CONTEXT = json.loads({{ cookiecutter | jsonify | tojson }})


def rules(target):
    """The repository's own rules (platform/shipyard/core/teams.py), else those of the Shipyard installed."""
    if (target / "platform" / "shipyard" / "core" / "teams.py").is_file():
        sys.path.insert(0, str(target / "platform"))
    try:
        from shipyard.core import teams
    except ImportError:
        print("error: Shipyard is not importable here; run cookiecutter in the repository's environment", file=sys.stderr)
        raise SystemExit(1) from None
    return teams


def main() -> int:
    target = Path(CONTEXT.get("_target") or os.path.dirname(os.getcwd())).resolve()
    if not (target / "platform").is_dir():
        print(
            f"error: {target} is not a Shipyard repository (no platform/); "
            "run cookiecutter from the repository's root",
            file=sys.stderr,
        )
        return 1
    teams = rules(target)

    answers = {name: CONTEXT.get(name) for name in teams.ANSWERS}
    problems = teams.check(answers, teams.read_repository(target), new=not CONTEXT.get("_render_only"))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
