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


def main() -> int:
    target = Path(CONTEXT.get("_target") or os.path.dirname(os.getcwd())).resolve()
    if not (target / "platform" / "shipyard" / "core" / "teams.py").is_file():
        print(
            f"error: {target} is not a Shipyard repository (no platform/shipyard/core/teams.py); "
            "run cookiecutter from the repository's root",
            file=sys.stderr,
        )
        return 1
    sys.path.insert(0, str(target / "platform"))
    from shipyard.core import teams

    answers = {name: CONTEXT.get(name) for name in teams.ANSWERS}
    problems = teams.check(answers, teams.read_repository(target), new=not CONTEXT.get("_render_only"))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
