"""Synthetic repositories of N teams, made from this repository's template, for the scale benchmark.

The template is what HEAD commits (`git archive`, so no .shipyard/ nor .venv). Its example team
`fraud` (a Team spec, Feast definitions and data checks, a training pipeline, a model deployment,
CODEOWNERS lines) is copied N-1 times under the names t0001, t0002, ...: every spelling of "fraud"
in the team's paths and files is renamed, so each copy has its own namespace, Feast project and
feature service, pipeline, experiment and registered model. `recsys`, a Team spec with no
workloads, is left out, so that N teams are N copies of one. The stacks (Pulumi.<stack>.yaml)
are kept as committed; each declares a GPU pool, which the copied pipeline's GPU task needs.

Four commits, so that base plans have something to compare:

    c0 "platform"     the template without any team
    c1 "N teams"      the N teams          plan at c1 against base:c0 creates everything
    c2 "one field"    one ModelDeployment's replicas.max   plan --target base:HEAD~1: a PR's plan
    c3 "one team"     one Team's GPU quota                 plan --target base:HEAD~1

    python tests/benchmarks/synth.py --teams 100 DIR
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_TEAM = "fraud"
LEFT_OUT = ("recsys",)  # template teams that are not copied
CODEOWNERS = ".github/CODEOWNERS"
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


@dataclass(frozen=True)
class SynthRepo:
    root: Path
    teams: tuple[str, ...]
    platform: str  # c0: the template without teams
    full: str  # c1: N teams
    one_field: str  # c2: one ModelDeployment field changed
    team_change: str  # c3: one Team spec changed (HEAD)
    edited_team: str  # the team whose ModelDeployment and Team spec c2 and c3 change


def team_names(teams: int) -> tuple[str, ...]:
    """The example team, then t0001, t0002, ...: short DNS-1123 labels that are also Python
    identifiers and Feast project names."""
    return (TEMPLATE_TEAM, *(f"t{i:04d}" for i in range(1, teams)))


def rename(text: str, team: str) -> str:
    """Every "fraud" in ``text`` as ``team``, in the same case (is_fraud, FraudProbability, fraud-scorer)."""

    def spelled(match: re.Match[str]) -> str:
        word = match.group(0)
        return team.upper() if word.isupper() else team.capitalize() if word[0].isupper() else team

    return re.sub(TEMPLATE_TEAM, spelled, text, flags=re.IGNORECASE)


def belongs_to(path: str, team: str) -> bool:
    """Whether a template path is one of ``team``'s (features/fraud/..., platform/teams/fraud.yaml)."""
    return any(part.split(".")[0] == team for part in Path(path).parts)


def team_line(line: str, team: str) -> bool:
    return not line.lstrip().startswith("#") and team in line


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
    """Each stack declares a GPU pool (an NVIDIA AMI), as the copied pipeline's GPU task asks for one."""
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


def make_repo(where: Path, teams: int, source: Path = REPO) -> SynthRepo:
    """A git repository in ``where`` (made if missing, must be empty) with ``teams`` teams and the four commits."""
    if teams < 1:
        raise ValueError("at least one team")
    where.mkdir(parents=True, exist_ok=True)
    if any(where.iterdir()):
        raise SystemExit(f"{where} is not empty")
    files = template(source)
    check_gpu_pools(files)
    dropped = (TEMPLATE_TEAM, *LEFT_OUT)
    team_files = {path: content for path, content in files.items() if belongs_to(path, TEMPLATE_TEAM)}
    platform = {path: content for path, content in files.items() if not any(belongs_to(path, t) for t in dropped)}
    owners = files[CODEOWNERS].decode().splitlines(keepends=True)
    platform[CODEOWNERS] = "".join(line for line in owners if not any(team_line(line, t) for t in dropped)).encode()

    git(where, "init", "-q", "-b", "main")
    write(where, platform)
    c0 = commit(where, "platform")

    names = team_names(teams)
    for team in names:
        write(
            where, {rename(path, team): rename(content.decode(), team).encode() for path, content in team_files.items()}
        )
    # each team line of CODEOWNERS once per team, where the template has it (spec lines apart from folder lines)
    expanded = []
    for line in owners:
        if any(team_line(line, t) for t in LEFT_OUT):
            continue
        expanded += [rename(line, team) for team in names] if team_line(line, TEMPLATE_TEAM) else [line]
    (where / CODEOWNERS).write_text("".join(expanded))
    c1 = commit(where, f"{teams} teams")

    edited = names[-1]
    edit(
        where,
        f"models/{edited}/{edited}-scorer.yaml",
        "replicas:\n    min: 2\n    max: 4",
        "replicas:\n    min: 2\n    max: 5",
    )
    c2 = commit(where, "one field")
    edit(where, f"platform/teams/{edited}.yaml", "gpu: 4", "gpu: 2")
    c3 = commit(where, "one team")
    return SynthRepo(where, names, c0, c1, c2, c3, edited)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teams", type=int, required=True)
    parser.add_argument("dir", type=Path)
    args = parser.parse_args()
    repo = make_repo(args.dir, args.teams)
    print(f"{repo.root}: {len(repo.teams)} teams; edited: {repo.edited_team}")
    for label, rev in (("c0 platform", repo.platform), ("c1 teams", repo.full), ("c2 one field", repo.one_field)):
        print(f"  {label:14} {rev}")
    print(f"  {'c3 one team':14} {repo.team_change} (HEAD)")


if __name__ == "__main__":
    main()
