"""Loading a repository's specs: envelope, per-kind models, references, positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import team_yaml, write
from shipyard.core.repo import load_specs
from shipyard.engine.registry import Registry
from shipyard.sdk.errors import SpecError
from shipyard.sdk.model import Diagnostic

INDEX = """apiVersion: shipyard.dev/v1alpha1
kind: VectorIndex
metadata:
  name: products
  team: {team}
spec:
  dimensions: 384
  embeddingModel: minilm
"""


def problems(root: Path, registry: Registry) -> list[Diagnostic]:
    with pytest.raises(SpecError) as caught:
        load_specs(root, registry.kinds)
    return list(caught.value.diagnostics)


def where(d: Diagnostic) -> tuple[str, int, int, str]:
    assert d.position is not None
    return (d.position.file, d.position.line, d.position.column, d.key_path)


def test_valid_repo_loads_every_kind(tmp_path: Path, registry: Registry) -> None:
    write(
        tmp_path,
        {
            "platform/teams/fraud.yaml": team_yaml("fraud"),
            "vector-indexes/fraud/products.yaml": INDEX.format(team="fraud"),
        },
    )
    specs = load_specs(tmp_path, registry.kinds)
    assert [s.ref for s in specs] == ["Team/fraud", "VectorIndex/fraud/products"]
    team = specs.of_kind("Team")[0]
    assert team.spec.quota.gpu == 2
    assert team.spec.quota.cpu == "8"  # numbers become Kubernetes quantities
    assert (team.position("spec", "quota", "gpu").line, team.position("spec", "quota", "gpu").column) == (10, 10)


def test_key_typo_points_at_the_key_and_suggests_the_right_one(tmp_path: Path, registry: Registry) -> None:
    write(tmp_path, {"platform/teams/fraud.yaml": team_yaml("fraud").replace("    gpu:", "    gpus:")})
    (d,) = problems(tmp_path, registry)
    assert where(d) == ("platform/teams/fraud.yaml", 10, 5, "spec.quota.gpus")
    assert d.rule == "spec/unknown-key"
    assert d.message == "got unknown key 'gpus', expected one of cpu, gpu, memory"
    assert d.hint == "did you mean 'gpu'?"
    assert d.snippet == "    gpus: 2"


def test_a_key_with_brackets_is_an_unknown_key_not_a_crash(tmp_path: Path, registry: Registry) -> None:
    # pydantic's union-member tags also contain '[': a key the document has is never one
    write(tmp_path, {"platform/teams/fraud.yaml": team_yaml("fraud").replace("apiVersion:", "0[apiVersion:")})
    found = {d.rule: d for d in problems(tmp_path, registry)}
    assert where(found["spec/unknown-key"]) == ("platform/teams/fraud.yaml", 1, 1, "0[apiVersion")
    assert found["spec/missing-key"].message == "got nothing, expected required key 'apiVersion'"


def test_wrong_type_points_at_the_value(tmp_path: Path, registry: Registry) -> None:
    write(tmp_path, {"platform/teams/fraud.yaml": team_yaml("fraud").replace("gpu: 2", "gpu: four")})
    (d,) = problems(tmp_path, registry)
    assert where(d) == ("platform/teams/fraud.yaml", 10, 10, "spec.quota.gpu")
    assert d.message == "got 'four', expected a whole number"


def test_boolean_where_text_was_meant_gets_the_yaml_hint(tmp_path: Path, registry: Registry) -> None:
    write(tmp_path, {"platform/teams/fraud.yaml": team_yaml("fraud").replace("group: fraud-ml", "group: no")})
    (d,) = problems(tmp_path, registry)
    assert d.key_path == "spec.group"
    assert "got boolean false" in d.message
    assert "quote the value" in d.hint


def test_missing_required_key_points_at_its_parent(tmp_path: Path, registry: Registry) -> None:
    text = team_yaml("fraud").replace("  budget:\n    monthlyUsd: 1000\n", "")
    write(tmp_path, {"platform/teams/fraud.yaml": text})
    (d,) = problems(tmp_path, registry)
    assert d.rule == "spec/missing-key"
    assert where(d)[1:] == (6, 3, "spec.budget")
    assert d.message == "got nothing, expected required key 'budget'"


def test_unknown_kind_and_bad_api_version(tmp_path: Path, registry: Registry) -> None:
    text = team_yaml("fraud").replace("kind: Team", "kind: Teem").replace("v1alpha1", "v2")
    write(tmp_path, {"platform/teams/fraud.yaml": text})
    found = {d.rule: d for d in problems(tmp_path, registry)}
    assert set(found) == {"spec/literal-error", "spec/unknown-kind"}
    assert found["spec/unknown-kind"].hint == "did you mean 'Team'?"
    assert where(found["spec/literal-error"])[1:] == (1, 13, "apiVersion")


def test_missing_and_unknown_team(tmp_path: Path, registry: Registry) -> None:
    write(
        tmp_path,
        {
            "platform/teams/fraud.yaml": team_yaml("fraud"),
            "vector-indexes/a.yaml": INDEX.format(team="frauds"),
            "vector-indexes/b.yaml": INDEX.replace("  team: {team}\n", "").replace("products", "other"),
        },
    )
    found = problems(tmp_path, registry)
    assert [(d.rule, *where(d)) for d in found] == [
        # A document that fails validation first; what checking specs against each other finds, after.
        ("spec/missing-team", "vector-indexes/b.yaml", 4, 3, "metadata.team"),
        ("spec/unknown-team", "vector-indexes/a.yaml", 5, 9, "metadata.team"),
    ]
    assert "an existing Team (fraud)" in found[1].message


def test_team_documents_take_no_team(tmp_path: Path, registry: Registry) -> None:
    text = team_yaml("fraud").replace("  name: fraud\n", "  name: fraud\n  team: x\n")
    write(tmp_path, {"platform/teams/fraud.yaml": text})
    (d,) = problems(tmp_path, registry)
    assert (d.rule, where(d)[1:]) == ("spec/unexpected-team", (5, 3, "metadata.team"))


def test_duplicate_names_per_kind(tmp_path: Path, registry: Registry) -> None:
    write(tmp_path, {"platform/teams/a.yaml": team_yaml("fraud"), "platform/teams/b.yaml": team_yaml("fraud")})
    (d,) = problems(tmp_path, registry)
    assert d.rule == "spec/duplicate-name"
    assert where(d) == ("platform/teams/b.yaml", 4, 9, "metadata.name")
    assert "platform/teams/a.yaml:1:1" in d.hint


def test_same_name_in_two_teams_is_fine(tmp_path: Path, registry: Registry) -> None:
    write(
        tmp_path,
        {
            "platform/teams/a.yaml": team_yaml("fraud"),
            "platform/teams/b.yaml": team_yaml("search"),
            "vector-indexes/a.yaml": INDEX.format(team="fraud"),
            "vector-indexes/b.yaml": INDEX.format(team="search"),
        },
    )
    assert len(load_specs(tmp_path, registry.kinds)) == 4


def test_many_documents_in_one_file_and_every_error_at_once(tmp_path: Path, registry: Registry) -> None:
    bad_name = team_yaml("Bad_Name")
    write(
        tmp_path,
        {
            "platform/teams/all.yaml": team_yaml("fraud") + "---\n" + team_yaml("search") + "---\n" + bad_name,
            "platform/teams/empty.yaml": "",
            "platform/teams/latin1.yaml": b"apiVersion: caf\xe9\n",
            "platform/teams/list.yaml": "- a\n- b\n",
        },
    )
    found = problems(tmp_path, registry)
    assert [(d.rule, where(d)[0], where(d)[1]) for d in found] == [
        ("spec/string-pattern-mismatch", "platform/teams/all.yaml", 34),
        ("yaml/empty-file", "platform/teams/empty.yaml", 1),
        ("yaml/encoding", "platform/teams/latin1.yaml", 1),
        ("spec/not-a-mapping", "platform/teams/list.yaml", 1),
    ]


def test_errors_in_the_spec_are_reported_even_when_the_envelope_is_bad(tmp_path: Path, registry: Registry) -> None:
    text = team_yaml("Bad_Name").replace("gpu: 2", "gpu: -1")
    write(tmp_path, {"platform/teams/x.yaml": text})
    assert [d.key_path for d in problems(tmp_path, registry)] == ["metadata.name", "spec.quota.gpu"]


def test_a_repo_without_specs_is_valid_and_empty(tmp_path: Path, registry: Registry) -> None:
    assert len(load_specs(tmp_path, registry.kinds)) == 0
