"""Runs policies: pure functions from specs (and Resources) to Diagnostics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.model import Diagnostic, Resource, Severity
from shipyard.sdk.planes import Policy, PolicyContext


def run_policies(
    policies: Sequence[Policy], specs: SpecSet, resources: Sequence[Resource] | None = None
) -> list[Diagnostic]:
    """Every finding of every policy that can run on what is given.

    Findings take the policy's id as their rule and its severity: mandatory
    policies give errors (they stop plan and apply), advisory ones warnings.
    """
    ctx = PolicyContext(specs, resources)
    findings: list[Diagnostic] = []
    for policy in policies:
        if policy.needs_resources and resources is None:
            continue
        severity = Severity.ERROR if policy.mandatory else Severity.WARNING
        findings += [replace(d, rule=policy.id, severity=severity) for d in policy.check(ctx)]
    return findings


def blocking(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity is Severity.ERROR]
