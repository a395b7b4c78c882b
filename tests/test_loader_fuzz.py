"""Mutated specs never crash the loader: the only exception it raises is SpecError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import team_yaml
from shipyard.core.repo import load_specs
from shipyard.engine.registry import discover
from shipyard.sdk.errors import SpecError

VALID = team_yaml("fraud").encode()
KINDS = discover().kinds
SNIPPETS = [b":", b"- ", b"&a ", b"*a", b"!!python/object ", b"\t", b"{", b"]", b"'", b'"', b"\xff", b"---\n", b"<<: "]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            data[at:at] = draw(st.sampled_from(SNIPPETS))
        elif choice == 1:
            data[at : at + draw(st.integers(1, 20))] = b""
        elif choice == 2:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[at:at] = draw(st.text(max_size=12)).encode()
    return bytes(data)


def check(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "platform" / "teams" / "fuzz.yaml"
        path.parent.mkdir(parents=True)
        path.write_bytes(raw)
        diagnostics = ()
        try:
            load_specs(Path(folder), KINDS)  # anything but SpecError fails the test
        except SpecError as error:
            diagnostics = error.diagnostics
            assert diagnostics, "a SpecError always carries its diagnostics"
        for d in diagnostics:
            assert d.position is not None
            assert d.position.line >= 1
            assert d.position.column >= 1
            assert d.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_only_ever_raise_spec_errors(raw: bytes) -> None:
    check(raw)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_spec_errors(raw: bytes) -> None:
    check(raw)
