"""Move the rendered team into the repository's top-level folders, all of it or none of it.

The template renders into one staging folder (`.new-team-<team>/`, the working directory
here), because a team's files are spread over features/, pipelines/, models/, platform/teams/
and tests/. This hook refuses any file that exists already, copies the rest into place, adds
the team's lines to CODEOWNERS and writes the team's answers file (the template version and
the answers, which `shipyard team upgrade` reads). Any failure, Ctrl-C included, removes what
it wrote and restores CODEOWNERS. With `_render_only` (an upgrade rendering the template to
compare), it leaves the staging folder as it is.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CONTEXT = json.loads({{ cookiecutter | jsonify | tojson }})
FRAGMENT = "CODEOWNERS.fragment"


def git(target, *args):
    done = subprocess.run(["git", "-C", str(target), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def version(target, template):
    """The commit the template is baked from, and its tree: what an upgrade compares against."""
    commit = git(target, "rev-parse", "--verify", "--quiet", "HEAD")
    tree = git(target, "rev-parse", "--verify", "--quiet", f"HEAD:{template}") if commit else None
    return {"path": template, "commit": commit if tree else None, "tree": tree}


def place(staging, target, teams):
    files = sorted(p for p in staging.rglob("*") if p.is_file() and p.name != FRAGMENT)
    answers_file = target / teams.ANSWERS_FILE.format(team=CONTEXT["team"])
    paths = [target / p.relative_to(staging) for p in files] + [answers_file]
    clashes = [str(p.relative_to(target)) for p in paths if p.exists() or p.is_symlink()]
    if clashes:
        print(f"error: these files exist already, so nothing was written: {', '.join(clashes)}", file=sys.stderr)
        return 1
    codeowners = teams.codeowners_path(target)
    before = codeowners.read_text(encoding="utf-8") if codeowners.is_file() else None
    written, folders = [], []
    try:
        for source in files:
            destination = target / source.relative_to(staging)
            missing = [p for p in reversed(destination.parents) if not p.exists()]
            destination.parent.mkdir(parents=True, exist_ok=True)
            folders += missing
            written.append(destination)
            shutil.copyfile(source, destination)
        platform = " ".join(teams.platform_owners(target)) or CONTEXT["owner"]
        lines = (staging / FRAGMENT).read_text(encoding="utf-8").replace("{platform}", platform).splitlines()
        codeowners.parent.mkdir(parents=True, exist_ok=True)
        codeowners.write_text(teams.with_lines(before or "", lines), encoding="utf-8")
        record = {
            "template": version(target, teams.TEMPLATE),
            "answers": {name: CONTEXT[name] for name in teams.ANSWERS},
        }
        written.append(answers_file)
        answers_file.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for folder in reversed(folders):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if before is None:
            codeowners.unlink(missing_ok=True)
        else:
            codeowners.write_text(before, encoding="utf-8")
        raise
    try:  # what was written stays written, whatever happens to our output (a closed pipe)
        for path in written:
            print(f"created {path.relative_to(target)}")
        print(f"updated {codeowners.relative_to(target)}", flush=True)
    except OSError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor fail flushing it at exit
    return 0


def main():
    if CONTEXT.get("_render_only"):
        return 0
    staging = Path.cwd()
    target = Path(CONTEXT.get("_target") or staging.parent).resolve()
    if (target / "platform" / "shipyard" / "core" / "teams.py").is_file():
        sys.path.insert(0, str(target / "platform"))  # the repository's own rules, else the installed Shipyard's
    from shipyard.core import teams

    status = place(staging, target, teams)
    if status == 0 and staging.parent == target:
        shutil.rmtree(staging)  # plain cookiecutter rendered into the repository: leave no staging folder
    return status


if __name__ == "__main__":
    sys.exit(main())
