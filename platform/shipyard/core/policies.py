"""Runs policies: pure functions from specs (and Resources) to Diagnostics."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from shipyard.sdk.errors import PluginError
from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.model import Diagnostic, Resource, Severity
from shipyard.sdk.planes import Policy, PolicyContext


def run_policies(
    policies: Sequence[Policy],
    specs: SpecSet,
    resources: Sequence[Resource] | None = None,
    root: Path | None = None,
) -> list[Diagnostic]:
    """Every finding of every policy that can run on what is given.

    Findings take the policy's id as their rule and its severity: mandatory
    policies give errors (they stop plan and apply), advisory ones warnings; a finding
    without a hint gets the rule's. A rule that raises is an error naming it: it never
    passes silently.
    """
    ctx = PolicyContext(specs, resources, root)
    findings: list[Diagnostic] = []
    for policy in policies:
        if policy.needs_resources and resources is None:
            continue
        severity = Severity.ERROR if policy.mandatory else Severity.WARNING
        try:
            found = list(policy.check(ctx))
        except Exception as error:
            where = traceback.extract_tb(error.__traceback__)[-1]
            on = _culprit(policy, ctx)
            raise PluginError(
                f"rule {policy.id} raised {type(error).__name__}: {error} (at {where.filename}:{where.lineno})"
                + (f" on {on}" if on else ""),
                hint="a rule must return findings, never raise; fix the rule (nothing was planned or applied)",
            ) from error
        findings += [replace(d, rule=policy.id, severity=severity, hint=d.hint or policy.hint) for d in found]
    return findings


def _culprit(policy: Policy, ctx: PolicyContext) -> str:
    """What ``policy`` raises on, found by running it on one Resource (or one spec) at a time; "" when it raises
    only on them together. Only on the error path: a rule that raised is run again, alone."""
    if _raises(policy, PolicyContext(SpecSet(), [] if ctx.resources is not None else None, ctx.root)):
        return ""  # it raises on nothing at all: no input is to blame
    for resource in ctx.resources or ():
        if _raises(policy, PolicyContext(ctx.specs, [resource], ctx.root)):
            return resource.key
    for spec in ctx.specs:
        if _raises(policy, PolicyContext(SpecSet((spec,)), ctx.resources, ctx.root)):
            return f"{spec.ref} ({spec.source.file})"
    return ""


def _raises(policy: Policy, ctx: PolicyContext) -> bool:
    try:
        list(policy.check(ctx))
    except Exception:
        return True
    return False


def blocking(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    """The findings that stop plan and apply: errors (a waived finding is not one)."""
    return [d for d in diagnostics if d.severity is Severity.ERROR]
