"""Cross-team isolation: a team's specs name no other team's namespace, registered model, feature service or data,
unless that team exports it (``spec.exports`` of its Team); each refusal names both teams and the exact key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, edit, example_repo, whole_template, write
from shipyard.core.policies import run_policies
from shipyard.core.repo import load_specs
from shipyard.engine.registry import Registry
from shipyard.sdk.model import Resource

FRAUD_TEAM = "platform/teams/fraud.yaml"
BORROWED = "models/recsys/borrowed.yaml"
OFFLINE = "s3://shipyard-dev-feast-offline"


def deployment(model: str, *, team: str = "recsys", service: str = "") -> str:
    smoke = f"  smoke:\n    featureService: {service}\n    entity: {{user_id: 1}}\n" if service else ""
    return (
        "apiVersion: shipyard.dev/v1alpha1\n"
        "kind: ModelDeployment\n"
        "metadata:\n"
        "  name: borrowed\n"
        f"  team: {team}\n"
        "spec:\n"
        f"  registeredModel: {model}\n"
        "  serve:\n"
        "    local: {alias: champion}\n"
        f"{smoke}"
    )


def pipeline(*, model: str = "", experiment: str = "recsys", parameters: str = "") -> str:
    registered = f"  registeredModel: {model}\n" if model else ""
    values = f"  parameters:\n    {parameters}\n" if parameters else ""
    return (
        "apiVersion: shipyard.dev/v1alpha1\n"
        "kind: Pipeline\n"
        "metadata:\n"
        "  name: train\n"
        "  team: recsys\n"
        "spec:\n"
        '  owner: "@recsys-leads"\n'
        f"  experiment: {experiment}\n"
        f"{registered}"
        f"{values}"
    )


def exports(root: Path, **fields: list[str]) -> None:
    """Add ``spec.exports`` to the fraud team."""
    lines = "".join(f"    {key}: [{', '.join(values)}]\n" for key, values in fields.items())
    with (root / FRAUD_TEAM).open("a", encoding="utf-8") as handle:
        handle.write(f"  exports:\n{lines}")


def line_of(root: Path, path: str, text: str) -> int:
    lines = (root / path).read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return example_repo(tmp_path)


def refused(result: Result, *parts: str) -> None:
    assert result.code == 1, result.out + result.err
    for part in parts:
        assert part in result.err, f"{part!r} not in:\n{result.err}"
    assert "Traceback" not in result.err


def test_the_template_validates_clean(tmp_path: Path, shipyard: Callable[..., Result]) -> None:
    result = shipyard("validate", repo=example_repo(tmp_path / "example"))
    assert result.code == 0, result.err
    # with the repository's own rules too, no isolation rule finds anything (others answer for their findings)
    result = shipyard("validate", "--format", "json", repo=whole_template(tmp_path / "whole"))
    assert not {"SY-ISO-001", "SY-ISO-002", "SY-ISO-003", "SY-TEN-002"} & {
        d["rule"] for d in json.loads(result.out)["diagnostics"]
    }


def test_serving_another_teams_model_is_refused_naming_both_teams(root: Path, shipyard: Callable[..., Result]) -> None:
    write(root, {BORROWED: deployment("fraud-scorer")})
    line = line_of(root, BORROWED, "registeredModel")

    refused(
        shipyard("validate", repo=root),
        f"{BORROWED}:{line}:",
        "SY-ISO-001",
        "spec.registeredModel: got 'fraud-scorer', registered model of team fraud "
        "(registered by pipelines/fraud/train/pipeline.yaml), not of team recsys",
        "expected team recsys's own, or one team fraud exports",
        f"exports it: 'fraud-scorer' in spec.exports.registeredModels of {FRAUD_TEAM}",
    )


def test_serving_another_teams_model_is_allowed_when_it_exports_it(root: Path, shipyard: Callable[..., Result]) -> None:
    write(root, {BORROWED: deployment("fraud-scorer")})
    exports(root, registeredModels=["fraud-scorer"])
    result = shipyard("validate", repo=root)
    assert result.code == 0, result.err


def test_exporting_another_model_does_not_export_this_one(root: Path, shipyard: Callable[..., Result]) -> None:
    write(root, {BORROWED: deployment("fraud-scorer")})
    exports(root, registeredModels=["fraud-other"], featureServices=["fraud_scorer"])
    refused(shipyard("validate", repo=root), "SY-ISO-001", "not of team recsys")


@pytest.mark.parametrize(
    ("spec", "key", "value", "what"),
    [
        (pipeline(model="fraud-scorer"), "spec.registeredModel", "fraud-scorer", "registered model"),
        (pipeline(experiment="fraud"), "spec.experiment", "fraud", "experiment"),
    ],
)
def test_writing_to_another_teams_model_or_experiment_is_refused_even_when_exported(
    root: Path, shipyard: Callable[..., Result], spec: str, key: str, value: str, what: str
) -> None:
    path = "pipelines/recsys/train/pipeline.yaml"
    write(root, {path: spec})
    exports(root, registeredModels=["fraud-scorer"])
    line = line_of(root, path, key.split(".")[1])

    result = shipyard("validate", repo=root)
    refused(
        result,
        f"{path}:{line}:",
        "SY-ISO-002",
        f"{key}: got '{value}', {what} of team fraud (pipelines/fraud/train/pipeline.yaml writes to it), "
        "not of team recsys",
    )
    assert "not of team fraud" not in result.err  # named for fraud, it is fraud's: its pipeline is not refused


def test_what_no_team_is_named_for_is_refused_in_every_team_that_writes_to_it(
    root: Path, shipyard: Callable[..., Result]
) -> None:
    path = "pipelines/recsys/train/pipeline.yaml"
    write(root, {path: pipeline(experiment="shared")})
    edit(root, "pipelines/fraud/train/pipeline.yaml", "experiment: fraud", "experiment: shared")
    refused(
        shipyard("validate", repo=root),
        "got 'shared', experiment of team fraud (pipelines/fraud/train/pipeline.yaml writes to it), not of team recsys",
        f"got 'shared', experiment of team recsys ({path} writes to it), not of team fraud",
    )


def test_a_namespace_of_another_team_is_refused_naming_both_teams(root: Path, shipyard: Callable[..., Result]) -> None:
    edit(root, "platform/teams/recsys.yaml", "namespace: recsys-ml", "namespace: fraud")
    line = line_of(root, "platform/teams/recsys.yaml", "namespace:")
    refused(
        shipyard("validate", repo=root),
        f"platform/teams/recsys.yaml:{line}:",
        "SY-TEN-002",
        f"spec.namespace: got 'fraud', namespace of team fraud (its namespace, {FRAUD_TEAM}), not of team recsys",
    )


def test_another_teams_name_is_not_a_namespace_even_when_that_team_uses_another(
    root: Path, shipyard: Callable[..., Result]
) -> None:
    # recsys runs in recsys-ml; "recsys" is still its name, the namespace it would get without spec.namespace
    edit(root, FRAUD_TEAM, "group: fraud-ml", "group: fraud-ml\n  namespace: recsys")
    refused(
        shipyard("validate", repo=root),
        "SY-TEN-002",
        "got 'recsys', namespace of team recsys (its name, platform/teams/recsys.yaml), not of team fraud",
    )


@pytest.mark.parametrize(
    "value",
    [
        f"{OFFLINE}/fraud/transactions.parquet",
        f"{OFFLINE}/recsys/../fraud/transactions.parquet",  # out of its own folder
        ".shipyard/local/data/fraud/transactions.parquet",
    ],
)
def test_another_teams_data_is_refused_naming_both_teams(
    root: Path, shipyard: Callable[..., Result], value: str
) -> None:
    path = "pipelines/recsys/train/pipeline.yaml"
    write(root, {path: pipeline(parameters=f'source: "{value}"')})
    line = line_of(root, path, "source:")
    refused(
        shipyard("validate", repo=root),
        f"{path}:{line}:",
        "SY-ISO-003",
        f"spec.parameters.source: got '{value}', data of team fraud (its folder ",
        "not of team recsys",
        f"exports it: 'transactions.parquet' in spec.exports.dataPaths of {FRAUD_TEAM}",
    )


@pytest.mark.parametrize(
    ("exported", "value", "allowed"),
    [
        ("transactions.parquet", f"{OFFLINE}/fraud/transactions.parquet", True),
        ("shared/", f"{OFFLINE}/fraud/shared/day=1/part.parquet", True),
        ("shared/", f"{OFFLINE}/fraud/shared/../secret.parquet", False),
        ("transactions.parquet", f"{OFFLINE}/fraud/user_stats.parquet", False),
        ("transactions.parquet", f"{OFFLINE}/fraud", False),  # the whole folder is never exported
    ],
)
def test_another_teams_data_is_allowed_only_where_it_exports_it(
    root: Path, shipyard: Callable[..., Result], exported: str, value: str, allowed: bool
) -> None:
    write(root, {"pipelines/recsys/train/pipeline.yaml": pipeline(parameters=f'source: "{value}"')})
    exports(root, dataPaths=[exported])
    result = shipyard("validate", repo=root)
    assert (result.code == 0) is allowed, result.err
    assert ("SY-ISO-003" in result.err) is not allowed


def test_a_teams_own_data_and_other_buckets_are_its_own(root: Path, shipyard: Callable[..., Result]) -> None:
    parameters = f'own: "{OFFLINE}/recsys/clicks.parquet"\n    public: "s3://open-data/fraud/x.parquet"'
    write(root, {"pipelines/recsys/train/pipeline.yaml": pipeline(parameters=parameters)})
    result = shipyard("validate", repo=root)
    assert result.code == 0, result.err


def test_an_exported_data_path_stays_inside_the_team_folder(root: Path, shipyard: Callable[..., Result]) -> None:
    exports(root, dataPaths=["../recsys/"])
    refused(shipyard("validate", repo=root), "spec.exports.dataPaths[0]", "'..' segment")


def _feature_findings(root: Path, registry: Registry) -> list[str]:
    """SY-MOD-001 over the specs and the FeatureServices each team's Feast definitions declare."""
    specs = load_specs(root, registry.kinds)
    services = [Resource("features", "FeatureService", "fraud", "fraud_scorer", {})]
    rules = [p for p in registry.policies if p.id == "SY-MOD-001"]
    return [d.headline + " " + d.hint for d in run_policies(rules, specs, services, root)]


def test_reading_another_teams_feature_service_is_refused_naming_both_teams(root: Path, registry: Registry) -> None:
    write(root, {BORROWED: deployment("recsys-ranker", service="fraud_scorer")})
    line = line_of(root, BORROWED, "featureService")
    [finding] = _feature_findings(root, registry)
    assert finding.startswith(f"{BORROWED}:{line}:")
    assert (
        "spec.smoke.featureService: got 'fraud_scorer', feature service of team fraud (declared in features/fraud/), "
        "not of team recsys, expected team recsys's own, or one team fraud exports" in finding
    )
    assert f"exports it: 'fraud_scorer' in spec.exports.featureServices of {FRAUD_TEAM}" in finding


def test_reading_another_teams_feature_service_is_allowed_when_it_exports_it(root: Path, registry: Registry) -> None:
    write(root, {BORROWED: deployment("recsys-ranker", service="fraud_scorer")})
    exports(root, featureServices=["fraud_scorer"])
    assert _feature_findings(root, registry) == []


def test_an_exported_feature_service_the_team_does_not_declare_names_nothing(root: Path, registry: Registry) -> None:
    write(root, {BORROWED: deployment("recsys-ranker", service="fraud_ranker")})
    exports(root, featureServices=["fraud_ranker"])
    [finding] = _feature_findings(root, registry)
    assert "got 'fraud_ranker', expected a feature service of team fraud: fraud_scorer" in finding
