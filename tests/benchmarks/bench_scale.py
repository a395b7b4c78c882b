"""Scale: `validate` and the plans a pull request runs, as the repository grows to hundreds of teams.

    python tests/benchmarks/bench_scale.py                 # sizes 1, 10, 100, 250, 500
    python tests/benchmarks/bench_scale.py --sizes 1,10    # a quick look; other sizes in results.json stay
    python tests/benchmarks/bench_scale.py --report        # measure nothing: redraw scale.svg, print the table

For each size, one synthetic repository (synth.py: N teams baked from the team template over
varied answers, commits c0 platform, c1 N teams, c2 one ModelDeployment field, c3 one Team spec), then
one fresh `shipyard` process per figure, as a user or CI runs it:

    --help, validate (at c3; the fastest of three runs each)
    full plan         at c1, --target base:c0: every team's Resources created
    one-field change  at c2, --target base:HEAD~1: cold (no .shipyard/cache), then warm (again)
    one Team change   at c3, --target base:HEAD~1, cold
    drift             only where it runs without a live target

Every plan writes its Markdown comment (stdout) and its JSON (--out), so their sizes are measured on
the runs that are timed. Each figure has its wall time, the CPU time of the whole process tree (user +
sys, reaped as this process's children: it is their subreaper, so the workers count too) and the peak
of the tree's summed RSS, sampled from /proc every 50 ms. Results go to results.json (sizes measured
earlier and not measured again are kept, each with its own date and commit) and scale.svg, and a
Markdown table for the README is printed.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import html
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import SynthRepo, git, make_repo

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHIPYARD = str(Path(sys.executable).parent / "shipyard")
RESULTS = HERE / "results.json"
CHART = HERE / "scale.svg"
SIZES = (1, 10, 100, 250, 500)
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1_000_000

FIGURES = {
    "help": "`shipyard --help`",
    "validate": "`shipyard validate`",
    "plan_full": "full plan (c1 against `base:c0`)",
    "plan_one_field_cold": "one-field change (`base:HEAD~1`), cold",
    "plan_one_field_warm": "one-field change, warm (run again)",
    "plan_one_team": "one Team spec change (`base:HEAD~1`), base branch cached",
    "plan_one_team_cold": "one Team spec change, cold",
}
PLANS = ("plan_full", "plan_one_field_cold", "plan_one_field_warm", "plan_one_team", "plan_one_team_cold")


@dataclass(frozen=True)
class Target:
    figure: str  # a FIGURES key
    measure: str  # wall_s, cpu_s, peak_mb, markdown_chars, json_bytes or plan_bytes
    limit: float
    sizes: tuple[int, ...]  # where it applies
    text: str


EVERY = SIZES
TARGETS = (
    Target("help", "wall_s", 0.3, EVERY, "< 0.3 s"),
    Target("validate", "wall_s", 3, (500,), "< 3 s at 500"),
    Target("plan_full", "wall_s", 30, (100,), "< 30 s at 100"),
    Target("plan_full", "wall_s", 120, (500,), "< 120 s at 500"),
    Target("plan_one_field_cold", "wall_s", 5, (500,), "< 5 s at 500"),
    Target("plan_one_field_warm", "wall_s", 5, (500,), "< 5 s at 500"),
    Target("plan_one_team", "wall_s", 30, (500,), "< 30 s at 500"),
    *(Target(plan, "peak_mb", 2000, (500,), "< 2 GB at 500") for plan in PLANS),
    Target("plan_one_field_cold", "markdown_chars", 65_536, EVERY, "< 65,536 chars"),
    Target("plan_one_field_cold", "json_bytes", MB, (500,), "< 1 MB at 500"),
    Target("plan_one_field_cold", "plan_bytes", MB, (500,), "< 1 MB at 500"),
)


# -- measuring one process tree -----------------------------------------------------------------


def become_subreaper() -> None:
    """Orphaned workers are reparented to this process, so it reaps them and their CPU time counts."""
    pr_set_child_subreaper = 36
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def parents() -> dict[int, int]:
    """Every process's parent, from /proc."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:  # it exited meanwhile
                continue
            found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])  # the field after "(comm) state"
    return found


def descendants_rss() -> int:
    """Summed RSS, in bytes, of every process below this one (the CLI, its workers, any orphan of theirs)."""
    parent_of = parents()
    tree, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parent_of.items() if parent in frontier}
        tree |= frontier
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return total


class PeakSampler(threading.Thread):
    def __init__(self, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.every, self.peak, self.stop = every, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, descendants_rss())
            self.stop.wait(self.every)


def reap_orphans(patience: float = 30.0) -> int:
    """Wait for the workers the CLI left behind (now this process's children); how many were still running."""
    deadline = time.monotonic() + patience
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 0
        if pid == 0:
            if time.monotonic() > deadline:
                return sum(1 for parent in parents().values() if parent == os.getpid())
            time.sleep(0.05)


def measure(root: Path, args: list[str], out: Path) -> dict[str, object]:
    """One fresh `shipyard --repo root ARGS`: stdout into ``out``, its times, peak memory and exit code."""
    before = os.times()
    sampler = PeakSampler()
    sampler.start()
    with out.open("wb") as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen([SHIPYARD, "--repo", str(root), *args], stdout=stdout, stderr=stderr, env=ENV)
        _, status, _ = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        lingering = reap_orphans()
        sampler.stop.set()
        sampler.join()
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    after = os.times()
    result: dict[str, object] = {
        "wall_s": round(wall, 3),
        "cpu_s": round(after.children_user + after.children_system - before.children_user - before.children_system, 3),
        "peak_mb": round(sampler.peak / MB, 1),
        "rc": process.returncode,
    }
    if lingering:
        result["lingering_processes"] = lingering
    if process.returncode not in (0, 2):
        said = [line for line in errors.splitlines() if "error:" in line] or errors.strip().splitlines()
        result["error"] = said[0] if said else f"exit {process.returncode}"
    return result


# -- one size -----------------------------------------------------------------------------------


def plan_outputs(markdown: Path, plan_json: Path) -> dict[str, object]:
    """The comment's length in characters, the JSON's in bytes, and the plan's changes by action."""
    found: dict[str, object] = {"markdown_chars": len(markdown.read_text(errors="replace"))}
    if plan_json.exists():
        found["json_bytes"] = plan_json.stat().st_size
        plan = json.loads(plan_json.read_text()).get("plan", {})
        found["changes"] = {action: n for action, n in sorted(plan.get("summary", {}).items()) if n}
        found["plan_bytes"] = len(json.dumps(plan, indent=2))  # the plan alone, without the findings beside it
    return found


def bench_size(repo: SynthRepo, scratch: Path) -> dict[str, dict[str, object]]:
    root, cache, figures = repo.root, repo.root / ".shipyard" / "cache", {}

    def run(figure: str, *args: str, runs: int = 1) -> dict[str, object]:
        # the fastest of `runs`: the quick commands are the ones a busy machine's noise swamps
        tries = [measure(root, list(args), scratch / f"{figure}.out") for _ in range(runs)]
        figures[figure] = min(tries, key=lambda found: found["wall_s"])
        if runs > 1:
            figures[figure]["runs"] = runs
        print(f"  {figure:22} {figures[figure]}", flush=True)
        return figures[figure]

    def plan(figure: str, rev: str, target: str, cold: bool) -> None:
        git(root, "checkout", "-q", rev)
        if cold:
            shutil.rmtree(cache, ignore_errors=True)
        entries = sum(1 for p in cache.rglob("*") if p.is_file()) if cache.is_dir() else 0
        plan_json = scratch / f"{figure}.json"
        plan_json.unlink(missing_ok=True)
        run(figure, "plan", "--target", target, "--format", "markdown", "--out", str(plan_json))
        figures[figure] |= plan_outputs(scratch / f"{figure}.out", plan_json)
        figures[figure]["cache_files_before"] = entries

    run("help", "--help", runs=3)
    run("validate", "validate", runs=3)
    plan("plan_full", repo.full, f"base:{repo.platform}", cold=True)
    plan("plan_one_field_cold", repo.one_field, "base:HEAD~1", cold=True)
    plan("plan_one_field_warm", repo.one_field, "base:HEAD~1", cold=False)
    # A Team spec change as CI plans it: the cache holds what the base branch's plans computed (the run above).
    plan("plan_one_team", repo.team_change, "base:HEAD~1", cold=False)
    plan("plan_one_team_cold", repo.team_change, "base:HEAD~1", cold=True)
    git(root, "checkout", "-q", "main")
    drift = run("drift", "drift")
    if drift["rc"] == 1:  # a user error: no live target, no last apply to compare with
        figures["drift"] = {"skipped": f"needs a target with a last apply: {drift.get('error', '')}"}
    return figures


# -- reporting ----------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    memory_kb = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    )
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb * 1024 / 1e9, 1),
        "python": platform.python_version(),
    }


def source_commit() -> dict[str, object]:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    # the template is HEAD's; the engine that runs is the working tree's (an editable install)
    return {"commit": head, "engine_modified": bool(changed.stdout.strip())}


def met(target: Target, value: object) -> str:
    return "" if not isinstance(value, int | float) else " ✓" if value < target.limit else " ✗"


def value_of(results: dict[str, dict], size: int, figure: str, measure: str) -> object:
    """A figure's measure at a size; None where it was not measured or the run failed."""
    found = results.get(str(size), {}).get("figures", {}).get(figure, {})
    return None if "error" in found else found.get(measure)


def cell(results: dict[str, dict], size: int, figure: str, measure: str) -> str:
    figure_data = results.get(str(size), {}).get("figures", {}).get(figure, {})
    if "error" in figure_data:
        return "failed"
    value = figure_data.get(measure)
    if value is None:
        return ""
    text = {
        "wall_s": lambda v: f"{v:.2f} s" if v < 10 else f"{v:.1f} s",
        "cpu_s": lambda v: f"{v:.1f} s",
        "peak_mb": lambda v: f"{v:,.0f} MB",
        "markdown_chars": lambda v: f"{v:,}",
        "json_bytes": lambda v: f"{v / 1000:,.0f} kB",
        "plan_bytes": lambda v: f"{v / 1000:,.0f} kB",
    }[measure](value)
    marks = [met(t, value) for t in TARGETS if (t.figure, t.measure) == (figure, measure) and size in t.sizes]
    return text + "".join(marks)


def targets_of(figure: str, measure: str) -> str:
    return "; ".join(t.text for t in TARGETS if (t.figure, t.measure) == (figure, measure))


def table(results: dict[str, dict]) -> str:
    sizes = sorted(int(size) for size in results)
    head = "| | " + " | ".join(f"{s} team{'s' * (s > 1)}" for s in sizes) + " | target |\n"
    rule = "|---|" + "--:|" * len(sizes) + "---|\n"

    def row(label: str, figure: str, measure: str) -> str:
        cells = " | ".join(cell(results, size, figure, measure) for size in sizes)
        return f"| {label} | {cells} | {targets_of(figure, measure)} |\n"

    changes = []
    for size in sizes:
        counted = value_of(results, size, "plan_full", "changes") or {}
        changes.append(f"{counted.get('create', 0):,} of {sum(counted.values()):,}" if counted else "")
    lines = ["wall time (✓/✗: within the issue's target where it applies)\n\n", head, rule]
    lines += [row(label, figure, "wall_s") for figure, label in FIGURES.items()]
    lines += ["\nCPU time (user + sys, whole process tree) and peak memory (summed RSS of the tree)\n\n", head, rule]
    for figure, label in FIGURES.items():
        lines.append(row(f"{label}: CPU", figure, "cpu_s"))
    for figure in ("validate", *PLANS):
        lines.append(row(f"{FIGURES[figure]}: peak memory", figure, "peak_mb"))
    lines += ["\nwhat the plans produce\n\n", head, rule]
    lines.append(f"| full plan: Resources created, of all | {' | '.join(changes)} | |\n")
    lines.append(row("one-field change: Markdown comment (characters)", "plan_one_field_cold", "markdown_chars"))
    lines.append(row("one-field change: plan JSON (`--out`, findings included)", "plan_one_field_cold", "json_bytes"))
    lines.append(row("one-field change: the plan in it", "plan_one_field_cold", "plan_bytes"))
    lines.append(row("full plan: Markdown comment (characters)", "plan_full", "markdown_chars"))
    lines.append(row("full plan: plan JSON (`--out`)", "plan_full", "json_bytes"))
    return "".join(lines)


# -- the chart: hand-written SVG, so the benchmark needs nothing beyond the standard library ----

COLORS = {
    "plan_full": "#1f77b4",
    "plan_one_field_cold": "#d62728",
    "plan_one_field_warm": "#ff7f0e",
    "plan_one_team": "#2ca02c",
    "plan_one_team_cold": "#9467bd",
}
SHORT = {"plan_full": "full plan", "plan_one_field_cold": "one field, cold", "plan_one_field_warm": "one field, warm",
         "plan_one_team": "one Team spec", "plan_one_team_cold": "one Team spec, cold",
         "validate": "validate"}  # fmt: skip


def chart(results: dict[str, dict], measure: str, title: str, unit: str, log_y: bool, x0: int) -> list[str]:
    """One chart at offset ``x0``: each plan figure against teams (log x), the targets as dashed lines."""
    left, top, width, height = x0 + 60, 40, 360, 250
    limits = [t for t in TARGETS if t.measure == measure and t.figure in COLORS]
    series = {
        figure: [(int(s), value_of(results, int(s), figure, measure)) for s in sorted(results, key=int)]
        for figure in COLORS
    }
    values = [v for points in series.values() for _, v in points if isinstance(v, int | float) and v > 0]
    values += [t.limit for t in limits]
    low = min(values) / 1.5 if log_y else 0
    high = max(values) * 1.3

    def x(teams: float) -> float:  # from 0.8 to 600 teams, so that no point sits on the frame
        return left + width * math.log10(teams / 0.8) / math.log10(600 / 0.8)

    def y(value: float) -> float:
        share = math.log10(value / low) / math.log10(high / low) if log_y else value / high
        return top + height * (1 - share)

    out = [f'<text x="{left + width / 2}" y="{top - 18}" text-anchor="middle" font-weight="bold">{title}</text>']
    out.append(f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#999"/>')
    for teams in SIZES:
        out.append(f'<line x1="{x(teams):.1f}" y1="{top}" x2="{x(teams):.1f}" y2="{top + height}" stroke="#eee"/>')
        out.append(f'<text x="{x(teams):.1f}" y="{top + height + 16}" text-anchor="middle">{teams}</text>')
    out.append(f'<text x="{left + width / 2}" y="{top + height + 34}" text-anchor="middle">teams (log scale)</text>')
    if log_y:
        ticks = [10**e * m for e in range(-2, 6) for m in (1, 2, 5)]
    else:  # a round step giving about five lines
        magnitude = 10 ** math.floor(math.log10(high / 5))
        step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= high / 5)
        ticks = [step * i for i in range(6)]
    for tick in (t for t in ticks if low <= t <= high):
        label = f"{tick:g}" if log_y else f"{tick:,.0f}"
        out.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + width}" y2="{y(tick):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">{label}</text>')
    out.append(
        f'<text transform="translate({x0 + 14},{top + height / 2}) rotate(-90)" text-anchor="middle">{unit}</text>'
    )
    labelled: list[float] = []
    for target in limits:
        if measure != "wall_s" and target.figure != PLANS[0]:
            continue  # memory: one line, at the same limit for every plan
        color = COLORS[target.figure] if measure == "wall_s" else "#000"
        out.append(
            f'<line x1="{left}" y1="{y(target.limit):.1f}" x2="{left + width}" y2="{y(target.limit):.1f}" '
            f'stroke="{color}" stroke-dasharray="5,4"/>'
        )
        note = f"{SHORT[target.figure]} {target.text}" if measure == "wall_s" else f"every plan {target.text}"
        shift = 175 * labelled.count(target.limit)  # labels of equal limits side by side
        labelled.append(target.limit)
        at = f'x="{left + 4 + shift}" y="{y(target.limit) - 3:.1f}"'
        out.append(f'<text {at} fill="{color}" font-size="10">{html.escape(note)}</text>')
    for n, (figure, points) in enumerate(series.items()):
        drawn = [(x(teams), y(v)) for teams, v in points if isinstance(v, int | float) and v > 0]
        if len(drawn) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in drawn)
            out.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[figure]}" stroke-width="2"/>')
        out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{COLORS[figure]}"/>' for px, py in drawn]
        legend_y = top + height + 52 + 14 * (n // 2)
        legend_x = left + (n % 2) * width / 2
        out.append(f'<rect x="{legend_x}" y="{legend_y - 9}" width="10" height="10" fill="{COLORS[figure]}"/>')
        out.append(f'<text x="{legend_x + 14}" y="{legend_y}">{SHORT[figure]}</text>')
    return out


def svg(results: dict[str, dict]) -> str:
    parts = chart(results, "wall_s", "Plan wall time", "seconds (log scale)", log_y=True, x0=0)
    parts += chart(results, "peak_mb", "Plan peak memory (process tree)", "MB", log_y=False, x0=460)
    body = "\n  ".join(parts)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="900" height="380" font-family="sans-serif" font-size="11">\n'
        f'  <rect width="100%" height="100%" fill="white"/>\n  {body}\n</svg>\n'
    )


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="team counts, comma-separated")
    parser.add_argument("--fresh", action="store_true", help="forget the sizes results.json already has")
    parser.add_argument("--keep", type=Path, help="make the repositories here and keep them")
    parser.add_argument("--report", action="store_true", help="measure nothing: redraw and print results.json")
    args = parser.parse_args()
    sizes = [] if args.report else [int(size) for size in args.sizes.split(",")]
    become_subreaper()
    results = {} if args.fresh or not RESULTS.exists() else json.loads(RESULTS.read_text()).get("sizes", {})
    about = {"machine": machine(), **source_commit()}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix=f"shipyard-scale-{size}-") as scratch:
            where = (args.keep or Path(scratch)) / f"repo-{size}"
            load = os.getloadavg()  # a shared machine: how busy it was when this size began
            started = time.perf_counter()
            repo = make_repo(where, size)
            made = time.perf_counter() - started
            print(f"{size} teams: repository made in {made:.1f} s ({where})", flush=True)
            figures = bench_size(repo, Path(scratch))
            results[str(size)] = {
                "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                **about,
                "load_average_before": load,
                "make_repo_s": round(made, 1),
                "bench_s": round(time.perf_counter() - started - made, 1),
                "commits": {k: v for k, v in asdict(repo).items() if k not in ("root", "teams")},
                "figures": figures,
            }
        # written after every size, so a long run that is stopped keeps what it measured
        document = {"about": about, "targets": [asdict(t) for t in TARGETS], "sizes": results}
        RESULTS.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        CHART.write_text(svg(results))
    if args.report:
        CHART.write_text(svg(results))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
