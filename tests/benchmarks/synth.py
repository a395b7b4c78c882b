"""Synthetic repositories of N teams, baked from the team template, for the scale benchmarks.

The platform is what HEAD commits (`git archive`, so no .shipyard/ nor .venv) less its teams:
`fraud` and `recsys` go (Team specs, answers files, team folders, tests/teams/test_*.py and their
CODEOWNERS lines); the team template (platform/templates/team/) stays. The N teams, t0001,
t0002, ... (short DNS-1123 labels that are also Python identifiers and Feast project names), are
then baked from that template as `shipyard new-team` bakes them, over varied answers: classifier
and regressor starter models, GPU training or not (GPU quota 4, or 0 or 2 without), and owners,
groups, domains, cost centers and budgets that differ from team to team. Each team has its own
namespace, Feast project and feature service, pipeline, experiment, registered model, tests,
CODEOWNERS lines and answers file (template version: c0 and its template tree, so every team is
current). The stacks (Pulumi.<stack>.yaml) are kept as committed; each declares a GPU pool,
which a GPU-training team's pipeline asks for.

Hooks are off here: through them each team costs two Python start-ups (about 0.13 s) and the
pre-generation hook reads every Team spec again (quadratic: minutes at 500 teams). So every
answer set is checked once up front with the same rules (`teams.check`, failing loudly), the
template is rendered with `_render_only`, and this module places the files, adds every team's
CODEOWNERS lines at once (`teams.with_lines`) and writes the answers files, as the hooks would.

Four commits, so that base plans have something to compare:

    c0 "platform"     HEAD without any team
    c1 "N teams"      the N teams          plan at c1 against base:c0 creates everything
    c2 "one field"    the last team's ModelDeployment replicas.max   plan --target base:HEAD~1: a PR's plan
    c3 "one team"     the last team's GPU quota                      plan --target base:HEAD~1

    python tests/benchmarks/synth.py --teams 100 DIR
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from shipyard.core import teams as rules

REPO = Path(__file__).resolve().parents[2]
FRAGMENT = "CODEOWNERS.fragment"
STAGING = ".new-team-{team}"
# Fixed identities and dates: the same template gives the same commit ids.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "synth",
    "GIT_AUTHOR_EMAIL": "synth@example.com",
    "GIT_COMMITTER_NAME": "synth",
    "GIT_COMMITTER_EMAIL": "synth@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,  # no signing, hooks or templates from whoever runs it
}
# (model_kind, gpu_training, gpu_quota), in turn: every combination within four teams
PROFILES = (
    ("tabular-classifier", "yes", "4"),
    ("tabular-regressor", "no", "0"),
    ("tabular-regressor", "yes", "4"),
    ("tabular-classifier", "no", "2"),
)
DOMAINS = ("payments", "storefront", "logistics", "marketing", "lending")
BUDGETS = ("10000", "18000", "25000", "42000", "7500", "120000")  # each above its GPU quota at prod prices


@dataclass(frozen=True)
class SynthRepo:
    root: Path
    teams: tuple[str, ...]
    platform: str  # c0: HEAD without teams
    full: str  # c1: N teams
    one_field: str  # c2: one ModelDeployment field changed
    team_change: str  # c3: one Team spec changed (HEAD)
    edited_team: str  # the team whose ModelDeployment and Team spec c2 and c3 change


def team_names(teams: int) -> tuple[str, ...]:
    """t0001, t0002, ...: short DNS-1123 labels that are also Python identifiers and Feast project names."""
    return tuple(f"t{i:04d}" for i in range(1, teams + 1))


def answers_for(n: int, team: str) -> dict[str, str]:
    """The answers the ``n``-th team (from 0) is baked with: varied, as `shipyard new-team` takes them (strings)."""
    kind, gpu, quota = PROFILES[n % len(PROFILES)]
    domain = DOMAINS[n % len(DOMAINS)]
    owner = (f"@acme/{team}", f"@acme-{domain}/{team}-leads", f"@{team}-lead")[n % 3]
    return {
        "team": team,
        "display_name": f"{team.upper()} {domain.title()}",
        "owner": owner,
        "group": (f"{team}-ml", f"ml:{domain}:{team}")[n % 2],
        "domain": domain,
        "cost_center": f"CC-{4000 + 10 * (n % 97)}",
        "gpu_quota": quota,
        "monthly_budget_usd": BUDGETS[n % len(BUDGETS)],
        "model_kind": kind,
        "gpu_training": gpu,
    }


def team_paths(team: str) -> tuple[str, ...]:
    """A team's paths in the repository: its folders (with a trailing /) and its files."""
    return (
        f"features/{team}/",
        f"pipelines/{team}/",
        f"models/{team}/",
        f"platform/teams/{team}.yaml",
        rules.ANSWERS_FILE.format(team=team),
        f"tests/teams/test_{rules.identifier(team)}.py",
    )


def belongs_to(path: str, paths: tuple[str, ...]) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in paths)


def without_team_lines(codeowners: str, paths: tuple[str, ...]) -> str:
    """CODEOWNERS less every line whose pattern is one of ``paths`` (comments and the rest stay)."""
    kept = []
    for line in codeowners.splitlines(keepends=True):
        fields = line.split("#", 1)[0].split()
        if fields and belongs_to(fields[0].lstrip("/"), paths):
            continue
        kept.append(line)
    return "".join(kept)


def git(root: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-verify", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def template(source: Path = REPO) -> dict[str, bytes]:
    """Every file HEAD commits, by path."""
    archive = subprocess.run(["git", "-C", str(source), "archive", "HEAD"], check=True, capture_output=True).stdout
    files = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                files[member.name] = handle.read()
    return files


def check_gpu_pools(files: dict[str, bytes]) -> None:
    """Each stack declares a GPU pool (an NVIDIA AMI), as a GPU-training team's pipeline asks for one."""
    for path, content in files.items():
        if re.fullmatch(r"Pulumi\.[a-z]+\.yaml", path):
            pools = yaml.safe_load(content)["config"]["shipyard:platform"]["nodePools"]
            if not any("NVIDIA" in pool.get("ami", "") for pool in pools):
                raise SystemExit(f"{path} declares no GPU pool; the benchmark needs one")


def write(root: Path, files: dict[str, bytes]) -> None:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def edit(root: Path, path: str, old: str, new: str) -> None:
    file = root / path
    text = file.read_text()
    if old not in text:
        raise SystemExit(f"{path} has no {old!r}: the template changed, update synth.py")
    file.write_text(text.replace(old, new, 1))


def platform_only(files: dict[str, bytes]) -> dict[str, bytes]:
    """HEAD's files less every team: those with a Team spec or an answers file, and their CODEOWNERS lines."""
    specs = re.compile(r"platform/teams/([^/]+?)(\.answers\.json|\.ya?ml)")
    found = {m.group(1) for path in files if (m := specs.fullmatch(path))}
    paths = tuple(p for team in sorted(found) for p in team_paths(team))
    tests = re.compile(r"tests/teams/test_[^/]+\.py")  # every team's own tests, whatever its name
    kept = {
        path: content for path, content in files.items() if not belongs_to(path, paths) and not tests.fullmatch(path)
    }
    for location in (p for p in kept if p.endswith("CODEOWNERS")):
        kept[location] = without_team_lines(kept[location].decode(), paths).encode()
    return kept


def bake(root: Path, answer_sets: list[dict[str, str]], version: dict[str, str], scratch: Path) -> None:
    """Render the template in ``root`` for each answer set and place the teams as the hooks do (see above)."""
    from cookiecutter.main import cookiecutter

    logging.getLogger("cookiecutter").setLevel(logging.CRITICAL)
    repository = rules.read_repository(root)
    for answers in answer_sets:
        problems = rules.check(answers, repository)
        if problems:
            raise SystemExit(f"synth: team {answers['team']}: " + "; ".join(map(str, problems)))
    platform = " ".join(rules.platform_owners(root))
    # no user config, and the replay files in the scratch folder rather than in ~/.cookiecutter_replay
    config = {"replay_dir": str(scratch / "replay"), "cookiecutters_dir": str(scratch / "cookiecutters")}
    lines: list[str] = []
    for answers in answer_sets:
        cookiecutter(
            str(root / rules.TEMPLATE),
            no_input=True,
            accept_hooks=False,
            extra_context=answers | {"_render_only": "1"},
            output_dir=str(scratch),
            default_config=config,
        )
        staging = scratch / STAGING.format(team=answers["team"])
        fragment = (staging / FRAGMENT).read_text(encoding="utf-8")
        lines += fragment.replace("{platform}", platform or answers["owner"]).splitlines()
        (staging / FRAGMENT).unlink()
        shutil.copytree(staging, root, dirs_exist_ok=True)
        shutil.rmtree(staging)
        record = {"template": version, "answers": {name: answers[name] for name in rules.ANSWERS}}
        answers_file = root / rules.ANSWERS_FILE.format(team=answers["team"])
        answers_file.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    codeowners = rules.codeowners_path(root)
    before = codeowners.read_text(encoding="utf-8") if codeowners.is_file() else ""
    codeowners.parent.mkdir(parents=True, exist_ok=True)
    codeowners.write_text(rules.with_lines(before, lines), encoding="utf-8")


def make_repo(where: Path, teams: int, source: Path = REPO) -> SynthRepo:
    """A git repository in ``where`` (made if missing, must be empty) with ``teams`` teams and the four commits."""
    if teams < 1:
        raise ValueError("at least one team")
    where.mkdir(parents=True, exist_ok=True)
    if any(where.iterdir()):
        raise SystemExit(f"{where} is not empty")
    files = template(source)
    if f"{rules.TEMPLATE}/cookiecutter.json" not in files:
        raise SystemExit(f"HEAD of {source} has no {rules.TEMPLATE}: the teams are baked from it")
    check_gpu_pools(files)

    git(where, "init", "-q", "-b", "main")
    write(where, platform_only(files))
    c0 = commit(where, "platform")

    names = team_names(teams)
    version = {"path": rules.TEMPLATE, "commit": c0, "tree": git(where, "rev-parse", f"{c0}:{rules.TEMPLATE}").strip()}
    answer_sets = [answers_for(n, team) for n, team in enumerate(names)]
    with tempfile.TemporaryDirectory(prefix="shipyard-synth-") as scratch:
        bake(where, answer_sets, version, Path(scratch))
    c1 = commit(where, f"{teams} teams")

    edited = names[-1]
    edit(
        where,
        f"models/{edited}/{edited}-scorer.yaml",
        "replicas:\n    min: 2\n    max: 4",
        "replicas:\n    min: 2\n    max: 5",
    )
    c2 = commit(where, "one field")
    quota = answer_sets[-1]["gpu_quota"]
    edit(where, f"platform/teams/{edited}.yaml", f"gpu: {quota}\n", f"gpu: {2 if quota != '2' else 1}\n")
    c3 = commit(where, "one team")
    return SynthRepo(where, names, c0, c1, c2, c3, edited)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teams", type=int, required=True)
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    repo = make_repo(args.dir, args.teams)
    print(f"{repo.root}: {len(repo.teams)} teams in {time.perf_counter() - started:.1f} s; edited: {repo.edited_team}")
    for label, rev in (("c0 platform", repo.platform), ("c1 teams", repo.full), ("c2 one field", repo.one_field)):
        print(f"  {label:14} {rev}")
    print(f"  {'c3 one team':14} {repo.team_change} (HEAD)")


if __name__ == "__main__":
    main()
