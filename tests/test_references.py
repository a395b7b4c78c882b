"""A reference that names nothing is an error at its spec line, never an empty lookup planned as a delete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import REPO_ROOT, Result, commit, edit, example_repo, journal_entries


def test_a_typo_in_the_registered_model_stops_plan_and_apply_at_its_line(
    tmp_path: Path, shipyard: Callable[..., Result]
) -> None:
    root = example_repo(tmp_path)
    edit(root, "models/fraud/fraud-scorer.yaml", "registeredModel: fraud-scorer", "registeredModel: fraud-scorr")
    commit(root, "a typo")

    for command in (("plan",), ("apply", "--target", "local")):
        result = shipyard(*command, repo=root)
        assert result.code == 1, result.err
        assert "models/fraud/fraud-scorer.yaml:8:" in result.err
        assert "got 'fraud-scorr', expected a model registered in MLflow (none yet)" in result.err
        assert "one a pipeline of team fraud registers (fraud-scorer)" in result.err
        assert "Traceback" not in result.err
        assert "delete" not in result.out
    assert journal_entries(root) == []  # nothing was applied


def test_a_gpu_pool_no_stack_declares_is_an_error_at_its_line(tmp_path: Path, shipyard: Callable[..., Result]) -> None:
    root = example_repo(tmp_path)
    for stack in ("dev", "staging", "prod"):
        (root / f"Pulumi.{stack}.yaml").write_text((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())
    edit(root, "pipelines/fraud/train/pipeline.yaml", "pool: gpu-a10g", "pool: gpu-h100")
    commit(root, "a pool that does not exist")

    result = shipyard("plan", repo=root)
    assert result.code == 1, result.err
    assert "pipelines/fraud/train/pipeline.yaml:21:" in result.err
    assert "got pool 'gpu-h100', expected a GPU node pool of every stack: gpu-a10g (dev, prod, staging)" in result.err


def test_a_smoke_request_from_a_feature_service_that_does_not_exist_is_an_error_at_its_line(
    tmp_path: Path, shipyard: Callable[..., Result]
) -> None:
    root = example_repo(tmp_path)
    edit(root, "models/fraud/fraud-scorer.yaml", "featureService: fraud_scorer", "featureService: fraud_scorr")
    commit(root, "a typo")

    result = shipyard("plan", "--target", "base:HEAD", repo=root)
    assert result.code == 1, result.err
    lines = (root / "models/fraud/fraud-scorer.yaml").read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "featureService: fraud_scorr" in text)
    assert f"models/fraud/fraud-scorer.yaml:{line}:" in result.err
    assert (
        "smoke.featureService: got 'fraud_scorr', expected a feature service of team fraud: fraud_scorer" in result.err
    )
