"""Feast store configuration for one team in one environment (pure: no Feast import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shipyard.planes.features.spec import FeatureStoreSpec
from shipyard.sdk.featurerepo import SECTION


def _local(root: Path, value: str) -> str:
    # Local files are anchored at the repo root; S3 objects and URLs are left alone.
    return value if "://" in value else str(root / value)


def offline_uri(store: FeatureStoreSpec, team: str) -> str:
    """The team's offline data as written in Feast sources: stable across checkouts, so plans compare."""
    return store.offline.uri.replace("{team}", team)


def project(team: str) -> str:
    """The team's Feast project: Feast names SQLite tables after it, so no hyphens."""
    return team.replace("-", "_")


def repo_config(store: FeatureStoreSpec, team: str, root: Path) -> dict[str, Any]:
    """Keyword arguments for ``feast.RepoConfig``: one Feast project per team (feast-dev/feast#4199)."""
    online = store.online
    online_store: dict[str, Any] = {"type": online.type}
    if online.type == "sqlite":
        assert online.path is not None
        online_store["path"] = _local(root, online.path.replace("{team}", team))
    elif online.type == "redis":
        online_store["connection_string"] = online.connection_string
    else:
        online_store["region"] = online.region
    registry = store.registry.path.replace("{team}", team)
    return {
        "project": project(team),
        "provider": "aws" if online.type == "dynamodb" else "local",
        "registry": {
            "registry_type": store.registry.type,
            "path": _local(root, registry) if store.registry.type == "file" else registry,
            "cache_ttl_seconds": 0,
        },
        "online_store": online_store,
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
        "repo_path": str(root),
    }


def feast_repo_yaml(store: FeatureStoreSpec, team: str, root: Path) -> str:
    """``features/<team>/feature_store.yaml`` for plain ``feast`` there: the local ``repo_config`` as Feast reads it.

    The same project, registry, provider and stores as the plane uses for ``team`` with ``root``'s
    paths (absolute, so they hold from the team's folder; Feast sets ``repo_path`` itself), and a
    ``shipyard:`` section Feast ignores: the offline data, which ``shipyard.sdk.featurerepo.offline_uri()``
    answers when Feast imports the definitions, also absolute, as Feast anchors a relative source
    path at the team's folder.
    """
    config = repo_config(store, team, root)
    del config["repo_path"]
    config[SECTION] = {"offline_uri": _local(root, offline_uri(store, team))}
    header = (
        "# Written by Shipyard (`shipyard features init`, `shipyard up`) from features/stores/local.yaml for\n"
        "# this checkout, so that `feast plan`, `feast apply` and `feast ui` work in this folder on the local\n"
        "# environment's registry and stores. Git-ignored: edit the store spec and write it again, not this file.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
