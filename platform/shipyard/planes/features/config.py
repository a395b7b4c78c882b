"""Feast store configuration for one team in one environment (pure: no Feast import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.planes.features.spec import FeatureStoreSpec


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
