"""New teams: the answers a team starts from, the rules they must meet, and the team's CODEOWNERS lines.

The team template (``platform/templates/team/``, a cookiecutter template) is baked by
``shipyard new-team`` and by plain ``cookiecutter``; its hooks load this module from the
repository they write into, so it needs nothing but the standard library and PyYAML
(a dependency of cookiecutter itself). Pure but for reading the repository's spec files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shipyard.core.owners import LOCATIONS

#: The answers the template asks for, in its order.
ANSWERS = (
    "team",
    "display_name",
    "owner",
    "group",
    "domain",
    "cost_center",
    "gpu_quota",
    "monthly_budget_usd",
    "model_kind",
    "gpu_training",
)
MODEL_KINDS = ("tabular-classifier", "tabular-regressor")
#: Where the template lives, and each team's record of the template version and answers it was made from.
TEMPLATE = "platform/templates/team"
ANSWERS_FILE = "platform/teams/{team}.answers.json"
#: The marker line in CODEOWNERS after which every line is a team's, kept sorted by path.
TEAMS_MARKER = "# Teams:"
#: Namespaces a team may never take: Kubernetes' own, and the platform's.
RESERVED = frozenset({"platform", "default", "kube-system", "kube-public", "kube-node-lease", "shipyard"})
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
#: KServe's Serverless host name is `<model>-predictor-<namespace>`, one DNS label (63 characters),
#: and a team's starter model is `<team>-scorer` in namespace `<team>`: 2 * len + 18 <= 63.
MAX_TEAM = (63 - len("-scorer-predictor-")) // 2
HANDLE = re.compile(r"^@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9._-]{1,100})?$")
PATTERNS = {
    "display_name": (r"^[A-Za-z0-9][A-Za-z0-9 &'().,-]{0,63}$", "up to 64 letters, digits, spaces and &'().,-"),
    "group": (r"^[A-Za-z0-9:@._-]{1,128}$", "an identity-provider group name (letters, digits, ':@._-')"),
    "domain": (r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", "a label value: lowercase letters, digits and '-', 1 to 63"),
    "cost_center": (r"^[A-Za-z0-9-]{1,32}$", "a cost-center code: letters, digits and '-', up to 32"),
}


@dataclass(frozen=True)
class Problem:
    """One refused answer: which, what was given, what is allowed."""

    answer: str
    given: Any
    allowed: str

    def __str__(self) -> str:
        return f"answer '{self.answer}': got {self.given!r}, expected {self.allowed}"


@dataclass(frozen=True)
class Repository:
    """What the rules need to know of the repository a team is added to."""

    teams: frozenset[str]  # declared in platform/teams/
    namespaces: Mapping[str, str]  # namespace -> the team that has it
    folders: frozenset[str]  # names with a folder in features/, pipelines/ or models/
    gpu_ceilings: Mapping[str, int]  # stack -> gpuCeiling
    platform_owners: tuple[str, ...]  # the owners of /.github/ in CODEOWNERS


def identifier(team: str) -> str:
    """The team's name as a Python identifier and Feast project (``fraud-ml`` -> ``fraud_ml``)."""
    return team.replace("-", "_")


def check(answers: Mapping[str, Any], repo: Repository, *, new: bool = True) -> list[Problem]:
    """Every answer that breaks a rule; ``new=False`` skips the checks against existing teams (an upgrade)."""
    problems = [Problem(name, None, "an answer") for name in ANSWERS if name not in answers]
    if problems:
        return problems
    problems += _team(str(answers["team"]), repo, new=new)
    owner = str(answers["owner"])
    if not HANDLE.match(owner):
        problems.append(Problem("owner", owner, "a GitHub handle: @org/team (or @user)"))
    for name, (pattern, allowed) in PATTERNS.items():
        if not re.match(pattern, str(answers[name])):
            problems.append(Problem(name, answers[name], allowed))
    if answers["model_kind"] not in MODEL_KINDS:
        problems.append(Problem("model_kind", answers["model_kind"], "one of " + ", ".join(MODEL_KINDS)))
    if answers["gpu_training"] not in ("yes", "no"):
        problems.append(Problem("gpu_training", answers["gpu_training"], "yes or no"))
    problems += _gpu_quota(answers["gpu_quota"], answers["gpu_training"] == "yes", repo)
    budget = _number(answers["monthly_budget_usd"], float)
    if budget is None or not math.isfinite(budget) or budget < 0:
        problems.append(Problem("monthly_budget_usd", answers["monthly_budget_usd"], "a number of US dollars >= 0"))
    return problems


def _team(team: str, repo: Repository, *, new: bool) -> list[Problem]:
    if not DNS_LABEL.match(team):
        allowed = "a DNS-1123 label: lowercase letters, digits and '-', starting with a letter, e.g. 'risk'"
        return [Problem("team", team, allowed)]
    if len(team) > MAX_TEAM:
        host = f"{team}-scorer-predictor-{team}"
        allowed = (
            f"at most {MAX_TEAM} characters: the model's host name {host} ({len(host)} characters) "
            "must be one DNS label of at most 63"
        )
        return [Problem("team", team, allowed)]
    if team in RESERVED or team.startswith("kube-"):
        return [Problem("team", team, f"a name that is not reserved ({', '.join(sorted(RESERVED))}, kube-*)")]
    if not new:
        return []
    if team in repo.teams:
        return [
            Problem("team", team, f"a new team: platform/teams/{team}.yaml exists (upgrade it: shipyard team upgrade)")
        ]
    if team in repo.namespaces:
        return [Problem("team", team, f"a free namespace: team {repo.namespaces[team]} has namespace '{team}'")]
    if team in repo.folders:
        return [Problem("team", team, f"a new name: features/, pipelines/ or models/ has a '{team}' folder already")]
    return []


def _gpu_quota(value: Any, trains_on_gpu: bool, repo: Repository) -> list[Problem]:
    quota = _number(value, int)
    ceiling = min(repo.gpu_ceilings.values(), default=None)
    low = 1 if trains_on_gpu else 0
    if quota is None or quota < low or (ceiling is not None and quota > ceiling):
        limit = "" if ceiling is None else f" and at most {ceiling}"
        where = min(repo.gpu_ceilings, key=lambda s: repo.gpu_ceilings[s]) if ceiling is not None else ""
        stack = f" (gpuCeiling of stack {where}, the smallest)" if where else ""
        why = " (GPU training needs one)" if trains_on_gpu else ""
        return [Problem("gpu_quota", value, f"a whole number of GPUs, at least {low}{why}{limit}{stack}")]
    return []


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    """``value`` as a whole number (``kind=int``) or any number, else None; YAML and flags give either."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if kind is float or isinstance(value, int) else None
    text = str(value).strip()
    if kind is int:
        return int(text) if text.isdigit() else None
    try:
        return float(text)
    except ValueError:
        return None


# -- reading the repository -----------------------------------------------------------------------


def read_repository(root: Path) -> Repository:
    """The teams, namespaces, team folders, GPU ceilings and platform owners of the repository at ``root``."""
    teams, namespaces = set(), {}
    for file in sorted((root / "platform" / "teams").glob("*.y*ml")):
        doc = _yaml(file)
        name = str((doc.get("metadata") or {}).get("name") or file.stem)
        teams.add(name)
        namespaces[str((doc.get("spec") or {}).get("namespace") or name)] = name
    folders = {p.name for top in ("features", "pipelines", "models") for p in (root / top).glob("*") if p.is_dir()}
    ceilings = {}
    for file in sorted(root.glob("Pulumi.*.yaml")):
        platform = ((_yaml(file).get("config") or {}).get("shipyard:platform")) or {}
        if isinstance(platform.get("gpuCeiling"), int):
            ceilings[file.name.split(".")[1]] = platform["gpuCeiling"]
    return Repository(frozenset(teams), namespaces, frozenset(folders), ceilings, platform_owners(root))


def _yaml(file: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}  # `shipyard validate` reports a broken file at its line; here it adds nothing
    return doc if isinstance(doc, dict) else {}


def codeowners_path(root: Path) -> Path:
    """The CODEOWNERS file GitHub reads (the first of its locations), or where a new one goes."""
    return next((root / p for p in LOCATIONS if (root / p).is_file()), root / LOCATIONS[0])


def platform_owners(root: Path) -> tuple[str, ...]:
    """The owners of ``/.github/``: the platform team, which reviews every Team spec too."""
    file = codeowners_path(root)
    text = file.read_text(encoding="utf-8") if file.is_file() else ""
    for line in text.splitlines():
        pattern, *owners = line.split("#", 1)[0].split() or [""]
        if pattern.strip("/") == ".github" and owners:
            return tuple(owners)
    return ()


# -- CODEOWNERS ------------------------------------------------------------------------------------


def with_lines(text: str, lines: Iterable[str]) -> str:
    """CODEOWNERS ``text`` with ``lines`` added to its team section, which stays sorted by path.

    A line for a path already listed replaces it. Everything above the ``# Teams:`` marker is
    kept as written; a file without the marker gets one at its end.
    """
    head, marker, tail = text.partition("\n" + TEAMS_MARKER)
    if not marker:
        head, tail = text.rstrip("\n"), " every team's paths, sorted by path (shipyard new-team keeps them so)\n"
    comment, _, body = tail.partition("\n")
    rest = body.splitlines()
    while rest and rest[0].startswith("#"):  # the marker's own comment lines
        comment += "\n" + rest.pop(0)
    entries = {}
    for line in [*rest, *lines]:
        fields = line.split("#", 1)[0].split()
        if fields:
            entries[fields[0]] = fields[1:]
        elif line.strip():
            raise ValueError(f"CODEOWNERS: a comment inside the team section ({line.strip()!r}); move it above it")
    width = max((len(path) for path in entries), default=0) + 2
    rows = [f"{path:<{width}}{' '.join(owners)}".rstrip() for path, owners in sorted(entries.items())]
    return f"{head}\n{TEAMS_MARKER}{comment}\n" + "".join(row + "\n" for row in rows)
