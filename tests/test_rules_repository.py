"""The repository's rules on its own files, pipelines and Feast objects (policies/repository.py, pipelines.py,
features.py): for every rule a passing and a failing fixture, the template passing every mandatory one, and a
mutation sweep (each rule's failing fixture is caught)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT
from shipyard.core.policies import run_policies
from shipyard.engine.planner import contexts, validate
from shipyard.engine.policies import repository_policies
from shipyard.engine.registry import Registry
from shipyard.planes.pipelines.spec import PipelineSpec
from shipyard.sdk import Diagnostic, PolicyContext
from shipyard.sdk.kinds import Spec, SpecSet
from shipyard.sdk.model import Resource, Severity, SourcePosition
from shipyard.sdk.planes import Policy

MODULES = ("policies/repository.py", "policies/pipelines.py", "policies/features.py")
RULES: dict[str, Policy] = {p.id: p for p, file in repository_policies(REPO_ROOT) if file in MODULES}
SHA = "11bd71901bbe5b1630ceea73d27597364c9af683"

# --- repository fixtures -----------------------------------------------------------------------------------

CODEOWNERS = """\
*                      @acme/platform
/.github/              @acme/platform
/policies/             @acme/platform
/platform/             @acme/platform
/infra/                @acme/platform
/platform/teams/fraud.yaml @acme/platform @fraud-leads
/features/fraud/       @fraud-leads
/pipelines/fraud/      @fraud-leads
/models/fraud/         @fraud-leads
"""

WORKFLOW = f"""\
name: ci
on:
  pull_request:
  push:
    branches: [main]
permissions:
  contents: read
jobs:
  test:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
      pull-requests: write
    steps:
      - uses: actions/checkout@{SHA} # v4.2.2
        with:
          persist-credentials: false
      - uses: ./.github/actions/setup
      - uses: docker://alpine@sha256:{"a" * 64}
      - name: Test
        env:
          TITLE: ${{{{ github.event.pull_request.title }}}}
        run: |
          echo "$TITLE" for ${{{{ github.sha }}}} on ${{{{ github.event.pull_request.number }}}}
          make test
"""


def repo(tmp_path: Path, **files: str | None) -> Path:
    """A repository with CODEOWNERS, the fraud team's folders and one workflow; ``files`` override or remove."""
    root = tmp_path / "repo"
    layout: dict[str, str | None] = {
        ".github/CODEOWNERS": CODEOWNERS,
        ".github/workflows/ci.yml": WORKFLOW,
        "platform/teams/fraud.yaml": "kind: Team\n",
        "features/fraud/features.py": "",
        "pipelines/fraud/train/pipeline.yaml": "kind: Pipeline\n",
        "models/fraud/scorer.yaml": "kind: ModelDeployment\n",
    }
    for name, text in (layout | {k.replace("__", "/"): v for k, v in files.items()}).items():
        if text is None:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def files(**changes: str | None) -> Callable[[Path], PolicyContext]:
    return lambda tmp_path: PolicyContext(SpecSet(), None, repo(tmp_path, **changes))


def workflow(old: str, new: str) -> Callable[[Path], PolicyContext]:
    assert old in WORKFLOW, old
    return files(**{".github__workflows__ci.yml": WORKFLOW.replace(old, new)})


# --- pipeline fixtures -------------------------------------------------------------------------------------

STACK = """\
config:
  shipyard:platform:
    nodePools:
      - name: system
      - name: gpu-a10g
"""
PIPELINE: dict[str, Any] = {
    "owner": "@fraud-ml",
    "experiment": "fraud",
    "schedule": {"cron": "0 3 * * *"},
    "gpu": [{"task": "train", "count": 1, "pool": "gpu-a10g", "accelerator": "nvidia.com/gpu"}],
}


def pipeline_spec(**changes: Any) -> Spec:
    spec = PipelineSpec.model_validate(PIPELINE)
    if "gpu" in changes:  # a task as the schema would refuse it: the rule must not rely on the schema alone
        changes["gpu"] = [spec.gpu[0].model_copy(update=changes["gpu"])]
    if "schedule" in changes:
        changes["schedule"] = spec.schedule.model_copy(update=changes["schedule"]) if spec.schedule else None
    spec = spec.model_copy(update=changes)
    return Spec("Pipeline", "train", "fraud", spec, SourcePosition("pipelines/fraud/train/pipeline.yaml", 3, 1))


def pipelines(stacks: int = 2, **changes: Any) -> Callable[[Path], PolicyContext]:
    def make(tmp_path: Path) -> PolicyContext:
        root = tmp_path / "repo"
        root.mkdir(parents=True)
        for stack in ("dev", "prod")[:stacks]:
            (root / f"Pulumi.{stack}.yaml").write_text(STACK)
        return PolicyContext(SpecSet((pipeline_spec(**changes),)), None, root)

    return make


TRAIN = {
    "component": "train",
    "after": [],
    "nodeSelector": {"labels": {"shipyard.dev/pool": "gpu-a10g"}},
    "resources": {"accelerator": {"resourceCount": "1", "resourceType": "nvidia.com/gpu"}},
}


def compiled(**train: Any) -> Callable[[Path], PolicyContext]:
    task = {k: v for k, v in (TRAIN | train).items() if v is not None}
    body = {"tasks": {"check-data": {"component": "check-data", "after": []}, "train": task}}
    resource = Resource("pipelines", "Pipeline", "fraud", "train", body)
    return lambda tmp_path: PolicyContext(SpecSet(), [resource])


# --- feature fixtures --------------------------------------------------------------------------------------

TEAM = Spec("Team", "fraud", None, None, SourcePosition("platform/teams/fraud.yaml", 3, 1))
VIEW: dict[str, Any] = {
    "name": "user_stats",
    "entities": ["user"],
    "features": [{"name": "email_domain", "value_type": "STRING", "tags": {"pii": "true"}}],
    "tags": {"owner": "fraud-ml@example.com"},
    "ttl": "172800s",
}


def features(scope: str = "fraud", kind: str = "FeatureView", **body: Any) -> Callable[[Path], PolicyContext]:
    view = {k: v for k, v in (VIEW | body).items() if v is not None}
    resources = [
        Resource("features", "Entity", scope, "user", {"name": "user", "join_key": "user_id"}),
        Resource("features", kind, scope, "user_stats", view),
    ]
    return lambda tmp_path: PolicyContext(SpecSet((TEAM,)), resources)


# --- the table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    rule: str
    name: str
    context: Callable[[Path], PolicyContext]
    found: str = ""  # a part of a finding's text, for failing cases


Context = Callable[[Path], PolicyContext]
PASSING: dict[str, list[tuple[str, Context]]] = {
    "SY-REPO-001": [
        ("every team folder owned", files()),
        (
            "a team's tests and answers file owned",
            files(
                **{
                    "tests__teams__test_fraud.py": "",
                    "platform__teams__fraud.answers.json": "{}",
                    ".github__CODEOWNERS": CODEOWNERS
                    + "/platform/teams/fraud.answers.json @acme/platform @fraud-leads\n"
                    + "/tests/teams/test_fraud.py @fraud-leads\n",
                }
            ),
        ),
        ("no root: nothing to read", lambda p: PolicyContext(SpecSet())),
    ],
    "SY-REPO-002": [
        ("platform paths owned by the platform", files()),
        ("CODEOWNERS at the root", files(**{".github__CODEOWNERS": None, "CODEOWNERS": CODEOWNERS})),
    ],
    "SY-GHA-001": [
        ("pinned, local and digest", files()),
        ("no workflows", files(**{".github__workflows__ci.yml": None})),
    ],
    "SY-GHA-002": [
        ("contents: read, a job write", files()),
        ("read-all", workflow("permissions:\n  contents: read\njobs", "permissions: read-all\njobs")),
    ],
    "SY-GHA-003": [
        ("pull_request", files()),
        ("one trigger", workflow("on:\n  pull_request:\n", "on: [pull_request]\n")),
    ],
    "SY-GHA-004": [("persist-credentials: false", files())],
    "SY-GHA-005": [("through env", files())],
    "SY-PIP-001": [("a complete GPU task", pipelines()), ("no stacks: fields only", pipelines(stacks=0))],
    "SY-PIP-002": [("type, count and pool", compiled())],
    "SY-PIP-003": [("daily", pipelines()), ("hourly", pipelines(schedule={"cron": "15 * * * *"}))],
    "SY-PIP-004": [("an owner", pipelines())],
    "SY-FEA-001": [
        ("owned pii", features()),
        ("no pii, no owner", features(features=[{"name": "x"}], tags={"pii": "false"})),
    ],
    "SY-FEA-002": [("pii with a TTL", features()), ("no TTL, no pii", features(features=[{"name": "x"}], ttl=None))],
    "SY-FEA-003": [("a team's project", features())],
}
FAILING: dict[str, list[tuple[str, Context, str]]] = {
    "SY-REPO-001": [
        ("no CODEOWNERS", files(**{".github__CODEOWNERS": None}), "no CODEOWNERS file"),
        (
            "a new team folder",
            files(**{"pipelines__recsys__ranker__pipeline.yaml": "x"}),
            "pipelines/recsys owned only by a catch-all",
        ),
        (
            "a team spec nobody owns",
            files(**{".github__CODEOWNERS": "/features/fraud/ @a\n/pipelines/fraud/ @a\n/models/fraud/ @a\n"}),
            "no line for platform/teams/fraud.yaml",
        ),
        (
            "its last line names no owner",
            files(**{".github__CODEOWNERS": CODEOWNERS + "/models/fraud/\n"}),
            "models/fraud",
        ),
        (
            "a team's own tests nobody owns",
            files(**{"tests__teams__test_fraud.py": ""}),
            "tests/teams/test_fraud.py owned only by a catch-all line",
        ),
        (
            "a team's answers file owned by the platform alone",
            files(**{"platform__teams__fraud.answers.json": "{}"}),
            "platform/teams/fraud.answers.json owned only by a catch-all line (@acme/platform)",
        ),
    ],
    "SY-REPO-002": [
        (
            "infra owned by a team",
            files(**{".github__CODEOWNERS": CODEOWNERS + "/infra/ @fraud-leads\n"}),
            "infra/ owned by @fraud-leads",
        ),
        ("no CODEOWNERS", files(**{".github__CODEOWNERS": None}), "no CODEOWNERS file"),
    ],
    "SY-GHA-001": [
        ("a tag", workflow(f"checkout@{SHA}", "checkout@v4"), "actions/checkout@v4"),
        ("a short SHA", workflow(f"checkout@{SHA}", "checkout@11bd719"), "11bd719"),
        ("an image by tag", workflow(f"alpine@sha256:{'a' * 64}", "alpine:3"), "docker://alpine:3"),
        ("bad YAML", workflow("jobs:\n", "jobs: [\n"), "YAML syntax error"),
    ],
    "SY-GHA-002": [
        ("write-all", workflow("permissions:\n  contents: read\njobs", "permissions: write-all\njobs"), "write-all"),
        ("no permissions", workflow("permissions:\n  contents: read\njobs", "jobs"), "no top-level permissions"),
        (
            "a write scope at the top",
            workflow("permissions:\n  contents: read\njobs", "permissions:\n  contents: write\njobs"),
            "contents: write",
        ),
        (
            "a job with write-all",
            workflow(
                "    permissions:\n      contents: read\n      pull-requests: write\n", "    permissions: write-all\n"
            ),
            "write-all",
        ),
    ],
    "SY-GHA-003": [
        ("pull_request_target", workflow("  pull_request:\n", "  pull_request_target:\n"), "pull_request_target"),
        (
            "in a list",
            workflow("on:\n  pull_request:\n  push:\n    branches: [main]\n", "on: [push, pull_request_target]\n"),
            "",
        ),
    ],
    "SY-GHA-004": [
        ("the default", workflow("        with:\n          persist-credentials: false\n", ""), "the default"),
        ("true", workflow("persist-credentials: false", "persist-credentials: true"), "persist-credentials: true"),
    ],
    "SY-GHA-005": [
        ("a PR title", workflow('echo "$TITLE"', "echo ${{ github.event.pull_request.title }}"), "pull_request.title"),
        ("a branch", workflow('echo "$TITLE"', "git push origin ${{ github.head_ref }}"), "head_ref"),
        ("a comment", workflow('echo "$TITLE"', "echo '${{ github.event.comment.body }}'"), "comment.body"),
    ],
    "SY-PIP-001": [
        ("a pool no stack has", pipelines(gpu={"pool": "gpu-h100"}), "pool 'gpu-h100'"),
        ("no accelerator type", pipelines(gpu={"accelerator": ""}), "accelerator ''"),
        ("no count", pipelines(gpu={"count": 0}), "0 GPUs"),
    ],
    "SY-PIP-002": [
        ("no pool selector", compiled(nodeSelector=None), "no pool node selector"),
        ("no type", compiled(resources={"accelerator": {"resourceCount": "1"}}), "without a type"),
        ("no count", compiled(resources={"accelerator": {"resourceType": "nvidia.com/gpu"}}), "accelerator count"),
    ],
    "SY-PIP-003": [
        ("every minute", pipelines(schedule={"cron": "* * * * *"}), "'* * * * *'"),
        ("every 15 minutes", pipelines(schedule={"cron": "*/15 * * * *"}), "*/15"),
        ("twice an hour", pipelines(schedule={"cron": "0,30 * * * *"}), "0,30"),
    ],
    "SY-PIP-004": [("an empty owner", pipelines(owner=" "), "no owner")],
    "SY-FEA-001": [
        ("a pii field, no owner", features(tags={}), "pii fields email_domain and no owner"),
        (
            "a pii view, no owner",
            features(features=[{"name": "x"}], tags={"classification": "PII"}),
            "a view tagged pii",
        ),
    ],
    "SY-FEA-002": [
        ("no TTL", features(ttl=None), "ttl None"),
        ("a zero TTL", features(ttl="0s"), "ttl '0s'"),
        ("a stream view", features(kind="StreamFeatureView", ttl=None), "ttl None"),
    ],
    "SY-FEA-003": [("a project without a team", features(scope="growth"), "Feast project 'growth'")],
}


def _cases(table: dict[str, list[Any]]) -> list[Any]:
    return [pytest.param(rule, *case, id=f"{rule}: {case[0]}") for rule, cases in table.items() for case in cases]


def test_the_modules_define_at_least_twelve_rules_each_with_a_hint() -> None:
    assert len(RULES) >= 12
    assert all(rule.hint for rule in RULES.values())


def test_every_rule_has_a_passing_and_a_failing_fixture() -> None:
    assert set(PASSING) == set(RULES) == set(FAILING)


@pytest.mark.parametrize(("rule", "name", "context"), _cases(PASSING))
def test_passing_fixture(rule: str, name: str, context: Context, tmp_path: Path) -> None:
    assert list(RULES[rule].check(context(tmp_path))) == []


@pytest.mark.parametrize(("rule", "name", "context", "found"), _cases(FAILING))
def test_failing_fixture(rule: str, name: str, context: Context, found: str, tmp_path: Path) -> None:
    findings = list(RULES[rule].check(context(tmp_path)))
    assert findings, f"{rule} found nothing in '{name}'"
    assert all(isinstance(f, Diagnostic) for f in findings)
    assert any(found in f.headline for f in findings), [f.headline for f in findings]
    assert all(f.subject for f in findings), "a waiver matches a finding by its subject"


@pytest.mark.parametrize("rule", sorted(RULES))
def test_mutation_each_rule_catches_its_failing_fixtures(rule: str, tmp_path: Path) -> None:
    """Run through the engine: every failing fixture yields findings under this rule's id and severity."""
    policy = RULES[rule]
    for index, (name, context, _) in enumerate(FAILING[rule]):
        ctx = context(tmp_path / str(index))
        findings = run_policies([policy], ctx.specs, ctx.resources if ctx.resources is not None else [], ctx.root)
        assert findings, f"{rule}: the mutation '{name}' went unnoticed"
        severity = Severity.ERROR if policy.mandatory else Severity.WARNING
        assert {(f.rule, f.severity) for f in findings} == {(rule, severity)}
        assert all(f.hint for f in findings)


def test_workflow_findings_point_at_the_line(tmp_path: Path) -> None:
    ctx = workflow(f"checkout@{SHA}", "checkout@v4")(tmp_path)
    [finding] = RULES["SY-GHA-001"].check(ctx)
    assert finding.position is not None
    assert (finding.position.file, finding.position.line) == (".github/workflows/ci.yml", 15)
    assert finding.subject == ".github/workflows/ci.yml"
    assert finding.snippet is not None
    assert "checkout@v4" in finding.snippet


def test_resource_findings_name_the_resource(tmp_path: Path) -> None:
    [finding] = RULES["SY-FEA-002"].check(features(ttl=None)(tmp_path))
    assert finding.subject == "features/fraud/FeatureView/user_stats"
    [finding] = RULES["SY-PIP-002"].check(compiled(nodeSelector=None)(tmp_path))
    assert (finding.subject, finding.key_path) == ("pipelines/fraud/Pipeline/train", "tasks.train")


def test_a_linked_codeowners_is_refused_unread(tmp_path: Path) -> None:
    root = repo(tmp_path, **{".github__CODEOWNERS": None})
    (root / ".github/CODEOWNERS").symlink_to(tmp_path / "secret")
    (tmp_path / "secret").write_text("* @someone\n")
    ctx = PolicyContext(SpecSet(), None, root)
    for rule in ("SY-REPO-001", "SY-REPO-002"):
        [finding] = RULES[rule].check(ctx)
        assert finding.message.startswith("got a symbolic link outside the repository")
        assert finding.subject == ".github/CODEOWNERS"


def test_a_linked_workflow_is_refused_unread(tmp_path: Path) -> None:
    root = repo(tmp_path, **{".github__workflows__ci.yml": None})
    (root / ".github/workflows").mkdir()
    (root / ".github/workflows/ci.yml").symlink_to(tmp_path / "secret")
    (tmp_path / "secret").write_text("on: pull_request_target\n")
    ctx = PolicyContext(SpecSet(), None, root)
    findings = [f for rule in RULES.values() for f in rule.check(ctx)]
    assert [f.message for f in findings] == [
        "got a symbolic link outside the repository, expected a regular file inside the repository"
    ]


def test_the_template_passes_every_mandatory_rule(registry: Registry) -> None:
    """The template itself (read-only): its files and specs, and the pipelines' and features' desired state."""
    validation = validate(registry, REPO_ROOT)
    ours = set(RULES)
    assert [f.headline for f in validation.findings if f.rule in ours and f.severity is Severity.ERROR] == []
    ctxs = contexts(registry, REPO_ROOT, validation.specs, "local", target=None)
    resources = [r for p in registry.planes if p.name in ("pipelines", "features") for r in p.desired(ctxs[p.name])]
    assert {r.plane for r in resources} == {"pipelines", "features"}
    mandatory = [p for p in RULES.values() if p.mandatory]
    findings = run_policies(mandatory, validation.specs, resources, REPO_ROOT)
    assert [f.headline for f in findings] == []
