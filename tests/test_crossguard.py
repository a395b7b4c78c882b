"""The CrossGuard pack's adapter: Shipyard's infra rules as stack policies, with the same waivers and failing closed.

Its policies' validate functions are called here with constructed arguments, as the Pulumi engine
would call them; a ``PolicyPack`` is never built (it starts a gRPC server and blocks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyResource, StackValidationArgs
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, unknown_checking_proxy

from conftest import write
from shipyard.planes.infra.crossguard import adapt, infra_rules, pack_policies
from shipyard.sdk import Diagnostic, PolicyContext, SourcePosition, rule

BUCKET = "aws:s3/bucket:Bucket"
STACK = "dev"


@rule("SY-TEST-001", "Buckets say whether they may be destroyed.", target=BUCKET, needs_resources=True, hint="set it")
def force_destroy_off(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for resource in ctx.resources or ():
        if resource.kind != BUCKET:
            continue
        value = resource.body["inputs"].get("forceDestroy")
        if value is not False:
            got = "a value known only after apply" if value == "04da6b54-80e4-46f7-96ec-b56ff0331ba9" else repr(value)
            found = Diagnostic.mismatch(
                "policy", got=got, expected="forceDestroy: false", position=SourcePosition(f"Pulumi.{STACK}.yaml")
            )
            yield replace(found, subject=resource.key)


@rule("SY-TEST-002", "Advisory twin.", target=BUCKET, needs_resources=True, mandatory=False)
def advisory(ctx: PolicyContext) -> Iterator[Diagnostic]:
    return iter(())


def resource(name: str, props: dict, kind: str = BUCKET) -> PolicyResource:
    urn = f"urn:pulumi:{STACK}::shipyard::{kind}::{name}"
    return PolicyResource(kind, unknown_checking_proxy(props), urn, name, None, None, None, [], {})


def violations(policy: object, *resources: PolicyResource) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    policy.validate(StackValidationArgs(list(resources)), lambda message, urn=None: found.append((message, urn)))
    return found


def test_a_rule_becomes_a_stack_policy_with_its_id_and_enforcement() -> None:
    mandatory, advisory_one = adapt(force_destroy_off), adapt(advisory)
    assert (mandatory.name, mandatory.description) == ("SY-TEST-001", "Buckets say whether they may be destroyed.")
    assert mandatory.enforcement_level == EnforcementLevel.MANDATORY
    assert advisory_one.enforcement_level == EnforcementLevel.ADVISORY
    assert infra_rules([force_destroy_off, advisory]) == [force_destroy_off, advisory]


def test_each_finding_is_a_violation_on_its_resources_urn() -> None:
    found = violations(
        adapt(force_destroy_off),
        resource("datasets", {"forceDestroy": False, "tags": {"team": "platform"}}),
        resource("scratch", {"forceDestroy": True}),
    )
    assert found == [
        ("got True, expected forceDestroy: false (set it)", f"urn:pulumi:{STACK}::shipyard::{BUCKET}::scratch")
    ]


def test_a_value_unknown_at_preview_is_reported_not_skipped() -> None:
    # CrossGuard would skip the policy with an advisory note; the rule sees the unknown and reports it.
    [(message, _)] = violations(adapt(force_destroy_off), resource("later", {"forceDestroy": UNKNOWN_BOOLEAN_VALUE}))
    assert "a value known only after apply" in message


def test_a_waiver_in_the_ledger_skips_its_resource_in_the_pack_until_it_expires(tmp_path: Path) -> None:
    ledger = (
        "waivers:\n  - rule: SY-TEST-001\n    resource: 'infra/dev/aws:s3/bucket:Bucket/scratch'\n"
        "    reason: scratch data\n    approver: '@sre'\n    expires: 2027-01-31\n"
    )
    write(tmp_path, {"policies/waivers.yaml": ledger})
    scratch = resource("scratch", {"forceDestroy": True})
    [in_force] = pack_policies([force_destroy_off], tmp_path, date(2027, 1, 31))
    assert violations(in_force, scratch) == []
    [expired] = pack_policies([force_destroy_off], tmp_path, date(2027, 2, 1))
    assert len(violations(expired, scratch)) == 1
