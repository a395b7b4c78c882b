"""The local router's control plane answers its owner only: this start's token, a loopback Host, a valid body.

The audit found `PUT /-/routes` accepted from any local process, with `Host: attacker.example`
(DNS rebinding), and a malformed body answered 500. A router is started here the way the
models plane starts one, and asked as an attacker and as its owner.
"""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.planes.models.serving.local import LocalServing


@pytest.fixture
def router(tmp_path: Path) -> Iterator[LocalServing]:
    served = LocalServing(tmp_path / ".shipyard" / "local", "fraud", "fraud-scorer")
    served._ensure_router()  # as the first rollout does, before any route
    try:
        yield served
    finally:
        served.stop()


def call(url: str, body: dict[str, Any] | None = None, **headers: str) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json", **headers})
    request.method = "GET" if body is None else "PUT"
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_admin_calls_need_the_token_of_this_start(router: LocalServing) -> None:
    assert router.url is not None
    nowhere = {"backends": []}
    assert call(f"{router.url}/-/routes", nowhere)[0] == 401
    assert call(f"{router.url}/-/routes", nowhere, Authorization="Bearer guessed")[0] == 401
    assert call(f"{router.url}/-/stats")[0] == 401
    token_file = router._token_file
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert call(f"{router.url}/-/stats", Authorization=f"Bearer {token}") == (200, {"backends": [], "draining": []})


def test_admin_calls_naming_another_host_are_refused_even_with_the_token(router: LocalServing) -> None:
    assert router.url is not None
    token = router._token_file.read_text().strip()
    rebound = call(f"{router.url}/-/routes", {"backends": []}, Authorization=f"Bearer {token}", Host="attacker.example")
    assert rebound == (403, {"error": "admin calls must name a loopback host"})


def test_a_malformed_routing_body_is_a_400_naming_what_was_expected(router: LocalServing) -> None:
    assert router.url is not None
    token = router._token_file.read_text().strip()
    for body in ({"nope": 1}, {"backends": [{"name": "a", "url": "http://evil.example", "weight": 100}]}):
        status, answer = call(f"{router.url}/-/routes", body, Authorization=f"Bearer {token}")
        assert status == 400, answer
        assert answer["error"].startswith("expected {'backends': [{'name', 'url', 'weight'}]}")


def test_health_fails_until_it_routes_somewhere(router: LocalServing) -> None:
    assert router.url is not None
    assert call(f"{router.url}/-/healthz")[0] == 503
    router.admin("/-/routes", {"backends": [{"name": "v1", "url": "http://127.0.0.1:9", "weight": 100}]})
    assert call(f"{router.url}/-/healthz") == (200, {"status": "ok", "backends": 1})
