"""What a team's Feast definitions may ask the platform while they are being read.

The features plane reads each team's ``features/<team>/`` for one environment at a time;
while it does, ``offline_uri()`` is where that team's offline data lives in that environment
(a folder locally, an S3 prefix in the cloud), from ``features/stores/<env>.yaml``::

    from shipyard.sdk.featurerepo import offline_uri

    source = FileSource(name="user_stats", path=f"{offline_uri()}/user_stats.parquet", ...)

It is a value scoped to that reading (a context variable), not process state.

The same folder is also a plain Feast repository for the local environment: Shipyard writes
``features/<team>/feature_store.yaml`` (``REPO_CONFIG``; git-ignored) with the config the plane
uses for that team locally, and a ``shipyard:`` section Feast ignores, holding the local offline
folder as an absolute path. When Feast itself imports the definitions (``feast plan`` and
``feast apply`` run in the repository folder), ``offline_uri()`` answers that folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

#: The Feast config Shipyard writes in a team's folder for the local environment.
REPO_CONFIG = "feature_store.yaml"
#: Its section of Shipyard's own values (Feast keeps unknown top-level keys and reads none of them).
SECTION = "shipyard"
#: What ``offline_uri()`` answers with neither a reading nor a written config.
DEFAULT = "data"

_OFFLINE: ContextVar[str | None] = ContextVar("shipyard_offline_uri", default=None)


def offline_uri() -> str:
    """The offline store location of the team being read.

    Inside the features plane's reading: the environment's, from ``features/stores/<env>.yaml``.
    Outside it: the local offline folder written in ``feature_store.yaml`` of the working directory
    (where Feast's ``plan`` and ``apply`` run), else ``data``. It reads, never writes or caches.
    """
    reading_now = _OFFLINE.get()
    if reading_now is not None:
        return reading_now
    return written_offline(Path.cwd() / REPO_CONFIG) or DEFAULT


def written_offline(config: Path) -> str | None:
    """The offline folder Shipyard wrote in the Feast config at ``config`` (None: no such file or value)."""
    import yaml  # here: `shipyard --help` and every plan import the SDK, few read a Feast config

    try:
        loaded = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    section = loaded.get(SECTION) if isinstance(loaded, dict) else None
    value = section.get("offline_uri") if isinstance(section, dict) else None
    return value if isinstance(value, str) and value else None


@contextmanager
def reading(offline: str) -> Iterator[None]:
    """The features plane's side: ``offline_uri()`` answers ``offline`` inside this block."""
    token = _OFFLINE.set(offline)
    try:
        yield
    finally:
        _OFFLINE.reset(token)
