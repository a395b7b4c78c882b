"""The committed JSON Schemas match the kinds and accept exactly what the loader accepts."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO_ROOT, team_yaml
from shipyard.core.specs import document_schema
from shipyard.engine.registry import Registry

SCHEMAS = REPO_ROOT / "platform" / "schemas"


def test_committed_schemas_are_current(registry: Registry) -> None:
    for kind in registry.kinds.values():
        committed = json.loads((SCHEMAS / f"{kind.name.lower()}.schema.json").read_text())
        assert committed == document_schema(kind), f"run `shipyard schema` ({kind.name})"


def test_every_team_spec_names_its_schema_in_a_modeline() -> None:
    for path in sorted((REPO_ROOT / "platform" / "teams").glob("*.yaml")):
        assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/team.schema.json\n"), path


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "platform" / "teams").glob("*.yaml")), ids=lambda p: p.name)
def test_repository_teams_satisfy_the_schema(path: Path) -> None:
    schema = json.loads((SCHEMAS / "team.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


@pytest.mark.parametrize(
    ("change", "old", "new"),
    [
        ("typo", "    gpu:", "    gpus:"),
        ("type", "gpu: 2", "gpu: two"),
        ("team on a Team", "  name: a\n", "  name: a\n  team: b\n"),
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(change: str, old: str, new: str) -> None:
    schema = json.loads((SCHEMAS / "team.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(team_yaml("a").replace(old, new)), schema)
