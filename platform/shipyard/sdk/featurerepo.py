"""What a team's Feast definitions may ask the platform while they are being read.

The features plane reads each team's ``features/<team>/`` for one environment at a time;
while it does, ``offline_uri()`` is where that team's offline data lives in that environment
(a folder locally, an S3 prefix in the cloud), from ``features/stores/<env>.yaml``::

    from shipyard.sdk.featurerepo import offline_uri

    source = FileSource(name="user_stats", path=f"{offline_uri()}/user_stats.parquet", ...)

It is a value scoped to that reading (a context variable), not process state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_OFFLINE: ContextVar[str] = ContextVar("shipyard_offline_uri", default="data")


def offline_uri() -> str:
    """The offline store location of the team being read (``data`` outside a reading)."""
    return _OFFLINE.get()


@contextmanager
def reading(offline: str) -> Iterator[None]:
    """The features plane's side: ``offline_uri()`` answers ``offline`` inside this block."""
    token = _OFFLINE.set(offline)
    try:
        yield
    finally:
        _OFFLINE.reset(token)
