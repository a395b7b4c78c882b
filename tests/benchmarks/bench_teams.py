"""New teams and template upgrades, as the repository grows: `shipyard new-team` and `team upgrade --all --check`.

    python tests/benchmarks/bench_teams.py              # new-team at 1, 100, 500 teams; upgrades at 10, 100, 500
    python tests/benchmarks/bench_teams.py --new-team-sizes 1 --upgrade-sizes 10    # a quick look

For each size, one synthetic repository (synth.py: N teams baked from the team template over
varied answers, every one current with it), then fresh `shipyard` processes, as a user or CI
runs them:

    new-team    `shipyard new-team bench-a --owner @acme/bench-a --gpu-quota 4 --no-input`, then
                `shipyard validate`: each and their sum (the target: under 5 s). Three times, with
                other names (bench-b, bench-c), the repository reset to its N teams in between;
                the median is reported.
    upgrade     `shipyard team upgrade --all --check` with every team current (exit 0), then after
                a commit that changes a comment in one template file, so that every team is behind
                (exit 2). The median of three runs each.

Each figure has its wall time, the CPU time of the process tree and its peak memory (measured as
bench_scale.py measures them). The results go to teams.json (machine, date, commit) and a
Markdown table for the README is printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import become_subreaper, machine, measure, source_commit
from synth import commit, edit, git, make_repo

from shipyard.core import teams

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "teams.json"
NEW_TEAM_SIZES = (1, 100, 500)
UPGRADE_SIZES = (10, 100, 500)
RUNS = 3
TARGET_S = 5.0  # new-team and validate, together
# a comment in one template file: a template change that every team is behind after
TEMPLATE_EDIT = (
    f"{teams.TEMPLATE}/.new-team-{{{{cookiecutter.team}}}}/models/{{{{cookiecutter.team}}}}/"
    "{{cookiecutter.team}}-scorer.yaml",
    "# the newest version that passes the gates",
    "# the newest version that passes every gate",
)


def reset(root: Path) -> None:
    """Back to the commit: what a new-team wrote goes."""
    git(root, "reset", "-q", "--hard")
    git(root, "clean", "-q", "-fd")


def median_of(tries: list[dict[str, object]]) -> dict[str, object]:
    """Each measure's median over the tries, and every try's wall time."""
    found: dict[str, object] = {
        key: round(statistics.median(t[key] for t in tries), 3) for key in ("wall_s", "cpu_s", "peak_mb")
    }
    found["walls"] = [t["wall_s"] for t in tries]
    found["rcs"] = sorted({t["rc"] for t in tries})
    errors = [t["error"] for t in tries if "error" in t]
    if errors:
        found["error"] = errors[0]
    return found


def bench_new_team(root: Path, scratch: Path, runs: int) -> dict[str, object]:
    new, checked, sums = [], [], []
    for n in range(runs):
        name = f"bench-{chr(ord('a') + n)}"
        made = measure(
            root, ["new-team", name, "--owner", f"@acme/{name}", "--gpu-quota", "4", "--no-input"], scratch / "out"
        )
        if made["rc"] != 0:
            made.setdefault("error", f"exit {made['rc']}")
        valid = measure(root, ["validate"], scratch / "out")
        if valid["rc"] != 0:
            valid.setdefault("error", f"exit {valid['rc']}")
        elif "warning" in (scratch / "out").read_text():
            valid["warnings"] = True
        new.append(made)
        checked.append(valid)
        sums.append(made["wall_s"] + valid["wall_s"])
        print(f"  new-team {name}: {made['wall_s']:.2f} s, validate {valid['wall_s']:.2f} s", flush=True)
        reset(root)
    return {
        "new_team": median_of(new),
        "validate": median_of(checked),
        "sum_wall_s": round(statistics.median(sums), 3),
        "sums": [round(s, 3) for s in sums],
    }


def bench_upgrade(root: Path, scratch: Path, runs: int, size: int) -> dict[str, object]:
    args = ["team", "upgrade", "--all", "--check"]
    current = median_of([measure(root, args, scratch / "out") for _ in range(runs)])
    if current["rcs"] != [0]:
        current.setdefault("error", f"expected exit 0 (all {size} current), got {current['rcs']}")
    print(f"  upgrade --all --check, all current: {current['wall_s']:.2f} s (exit {current['rcs']})", flush=True)
    edit(root, *TEMPLATE_EDIT)
    commit(root, "the template: one comment")
    behind = median_of([measure(root, args, scratch / "out") for _ in range(runs)])
    said = (scratch / "out").read_text().strip().splitlines()
    if behind["rcs"] != [2]:
        behind.setdefault("error", f"expected exit 2 (all {size} behind), got {behind['rcs']}")
    print(f"  upgrade --all --check, all behind:  {behind['wall_s']:.2f} s (exit {behind['rcs']})", flush=True)
    git(root, "reset", "-q", "--hard", "HEAD~1")
    return {"current": current, "behind": behind, "behind_said": said[-1] if said else ""}


# -- reporting ----------------------------------------------------------------------------------


def seconds(value: object) -> str:
    return "" if not isinstance(value, int | float) else f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def table(results: dict[str, object], runs: int) -> str:
    out = []
    new = results.get("new_team", {})
    if new:
        sizes = sorted(new, key=int)
        head = "| | " + " | ".join(f"{s} team{'s' * (int(s) > 1)}" for s in sizes) + " | target |\n"
        rule = "|---|" + "--:|" * len(sizes) + "---|\n"

        def row(label: str, get: Callable[[dict], str], target: str = "") -> str:
            cells = []
            for s in sizes:
                figure = new[s]
                failed = any("error" in figure[k] for k in ("new_team", "validate"))
                cells.append("failed" if failed else get(figure))
            return f"| {label} | {' | '.join(cells)} | {target} |\n"

        mark = lambda v: seconds(v) + (" ✓" if v < TARGET_S else " ✗")  # noqa: E731
        out += [f"`new-team` then `validate` (median of {runs}; fresh processes)\n\n", head, rule]
        out.append(row("`shipyard new-team … --no-input`", lambda f: seconds(f["new_team"]["wall_s"])))
        out.append(row("`shipyard validate` after it", lambda f: seconds(f["validate"]["wall_s"])))
        out.append(row("together", lambda f: mark(f["sum_wall_s"]), f"< {TARGET_S:g} s"))
        out.append(
            row(
                "`new-team`: CPU, peak memory",
                lambda f: f"{f['new_team']['cpu_s']:.1f} s, {f['new_team']['peak_mb']:.0f} MB",
            )
        )
    upgrades = results.get("upgrade", {})
    if upgrades:
        sizes = sorted(upgrades, key=int)
        head = "| | " + " | ".join(f"{s} teams" for s in sizes) + " |\n"
        rule = "|---|" + "--:|" * len(sizes) + "\n"

        def cell(figure: dict[str, object]) -> str:
            return "failed" if "error" in figure else f"{seconds(figure['wall_s'])} (exit {figure['rcs'][0]})"

        out += [f"\n`shipyard team upgrade --all --check` (median of {runs})\n\n", head, rule]
        for key, label in (("current", "every team current"), ("behind", "every team behind (a template commit)")):
            out.append(f"| {label} | {' | '.join(cell(upgrades[s][key]) for s in sizes)} |\n")
    synth = results.get("make_repo_s", {})
    if synth:
        sizes = sorted(synth, key=int)
        out.append(
            "\nsynth.py, making the repository: "
            + ", ".join(f"{s} team{'s' * (int(s) > 1)} {synth[s]:.1f} s" for s in sizes)
            + "\n"
        )
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--new-team-sizes", default=",".join(map(str, NEW_TEAM_SIZES)), help="team counts, comma-separated"
    )
    parser.add_argument(
        "--upgrade-sizes", default=",".join(map(str, UPGRADE_SIZES)), help="team counts, comma-separated"
    )
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the results go [teams.json]")
    args = parser.parse_args()
    parse = lambda text: [int(s) for s in text.split(",") if s]  # noqa: E731
    new_sizes, upgrade_sizes = parse(args.new_team_sizes), parse(args.upgrade_sizes)
    become_subreaper()
    about = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **source_commit(),
        "load_average_before": os.getloadavg(),
        "runs": args.runs,
    }
    results: dict[str, dict] = {"new_team": {}, "upgrade": {}, "make_repo_s": {}}
    for size in sorted(set(new_sizes) | set(upgrade_sizes)):
        with tempfile.TemporaryDirectory(prefix=f"shipyard-teams-{size}-") as scratch:
            started = time.perf_counter()
            repo = make_repo(Path(scratch) / "repo", size)
            results["make_repo_s"][str(size)] = round(time.perf_counter() - started, 2)
            print(f"{size} teams: repository made in {results['make_repo_s'][str(size)]:.1f} s", flush=True)
            if size in new_sizes:
                results["new_team"][str(size)] = bench_new_team(repo.root, Path(scratch), args.runs)
            if size in upgrade_sizes:
                results["upgrade"][str(size)] = bench_upgrade(repo.root, Path(scratch), args.runs, size)
        args.out.write_text(json.dumps({"about": about, **results}, indent=2, sort_keys=True) + "\n")
    print()
    print(table(results, args.runs))


if __name__ == "__main__":
    main()
