"""Bad inputs are user errors (exit 1) at the spec line or naming the argument, never accepted and never a traceback."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Result, edit, example_repo


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return example_repo(tmp_path)


def _user_error(result: Result, *where: str) -> None:
    assert result.code == 1, (result.code, result.out, result.err)
    for text in where:
        assert text in result.err, result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 * * * *", "the minute field within 0-59: 61 is out of range"),
        ("0 24 * * *", "the hour field within 0-23: 24 is out of range"),
        ("0 3 0 * *", "the day-of-month field within 1-31: 0 is out of range"),
        ("0 3 * 1-13 *", "the month field within 1-12: 13 is out of range"),
        ("0 3 * * 1,8", "the day-of-week field within 0-7: 8 is out of range"),
        ("*/0 3 * * *", "a step of at least 1"),
        ("0 5-3 * * *", "write 3-5"),
    ],
)
def test_cron_field_out_of_range_is_an_error_at_the_value(
    shipyard: Callable[..., Result], example: Path, cron: str, message: str
) -> None:
    spec = "pipelines/fraud/train/pipeline.yaml"
    edit(example, spec, '"0 3 * * *"', f'"{cron}"')
    _user_error(shipyard("validate", repo=example), f"{spec}:13:11: spec.schedule.cron", message)


@pytest.mark.parametrize("cron", ["*/15 0-23/2 1,15 * 0-7", "0 0 31 12 7", "59 23 1 1 0"])
def test_cron_in_range_is_valid(shipyard: Callable[..., Result], example: Path, cron: str) -> None:
    edit(example, "pipelines/fraud/train/pipeline.yaml", '"0 3 * * *"', f'"{cron}"')
    result = shipyard("validate", repo=example)
    assert result.code == 0, result.err


@pytest.mark.parametrize("amount", [".inf", "-.inf", ".nan", "'inf'"])
def test_budget_that_is_not_a_finite_number_is_an_error_at_the_value(
    shipyard: Callable[..., Result], repo: Path, amount: str
) -> None:
    edit(repo, "platform/teams/fraud.yaml", "monthlyUsd: 1000", f"monthlyUsd: {amount}")
    _user_error(shipyard("validate", repo=repo), "platform/teams/fraud.yaml:14:17: spec.budget.monthlyUsd", "finite")


@pytest.mark.parametrize(
    ("label", "where", "message"),
    [
        ('domain: "pay\\ements"', "6:13: metadata.labels.domain", "without control characters: character 4 is '\\x1b'"),
        (f"domain: {'x' * 64}", "6:13: metadata.labels.domain", "at most 63 characters"),
        ("domain: -payments", "6:13: metadata.labels.domain", "starting and ending with a letter or digit"),
        ('"a b": x', "6:12: metadata.labels.a b", "a label key of at most 63"),
        ('"Example.com/a": x', '6:22: metadata.labels["Example.com/a"]', "a DNS subdomain"),
    ],
)
def test_label_that_kubernetes_would_refuse_is_an_error_at_the_label(
    shipyard: Callable[..., Result], repo: Path, label: str, where: str, message: str
) -> None:
    team = "platform/teams/fraud.yaml"
    edit(repo, team, "metadata:\n  name: fraud\n", f"metadata:\n  name: fraud\n  labels:\n    {label}\n")
    _user_error(shipyard("validate", repo=repo), f"{team}:{where}", message)


def test_label_that_kubernetes_accepts_is_valid(shipyard: Callable[..., Result], repo: Path) -> None:
    labels = "app.kubernetes.io/part-of: fraud_1.2\n    empty: ''\n    Domain: Payments"
    edit(
        repo,
        "platform/teams/fraud.yaml",
        "metadata:\n  name: fraud\n",
        f"metadata:\n  name: fraud\n  labels:\n    {labels}\n",
    )
    result = shipyard("validate", repo=repo)
    assert result.code == 0, result.err


def test_unknown_environment_target_is_refused_before_any_plane_runs(
    shipyard: Callable[..., Result], example: Path
) -> None:
    started = time.monotonic()
    result = shipyard("plan", "-t", "nosuch", repo=example)
    _user_error(result, "unknown environment 'nosuch' (--target)", "dev, prod, staging")
    assert "FeatureStore" not in result.err
    assert time.monotonic() - started < 3  # no plane pinned or observed anything first


def test_promoting_a_version_that_does_not_exist_names_it(
    shipyard: Callable[..., Result], example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from shipyard.sdk.planes import local_state_dir

    # the local target's own registry (SQLite in its state folder, as no server runs), with the model but no version
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = local_state_dir(example) / "mlflow"
    folder.mkdir(parents=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    MlflowClient(uri, uri).create_registered_model("fraud-scorer")
    result = shipyard("promote", "fraud/fraud-scorer", "--version", "99999", repo=example)
    _user_error(result, "version 99999 of fraud-scorer does not exist (--version)", "train it first")


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("ttl=timedelta(days=2)", "ttl='two days'", "ttl=", 'TypeCheckError: argument "ttl" (str)'),
        ("online=True,", "online=True,,", "online=True,,", "SyntaxError"),
    ],
    ids=["ttl is not a timedelta", "syntax error"],
)
def test_feature_code_that_fails_is_a_user_error_at_its_line(
    shipyard: Callable[..., Result], example: Path, old: str, new: str, where: str, message: str
) -> None:
    code = "features/fraud/features.py"
    edit(example, code, old, new)
    line = next(n for n, text in enumerate((example / code).read_text().splitlines(), 1) if where in text)
    result = shipyard("plan", "--plane", "features", repo=example)
    _user_error(result, f"{code}:{line}: the Feast definitions failed to load: {message}", f"hint: fix {code}:{line}")
