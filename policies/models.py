"""Rules on model deployments (``models/<team>/*.yaml``): how a version reaches production traffic."""

from __future__ import annotations

from collections.abc import Iterator

from shipyard.sdk import Diagnostic, PolicyContext, rule

DEPLOYMENT = "ModelDeployment"
PRODUCTION = "prod"


@rule(
    "SY-MOD-002",
    "A canary takes at most half of the traffic.",
    target=f"spec:{DEPLOYMENT}",
    hint="a canary is a small share beside the serving version; lower spec.canary.percent to 50 or less",
)
def canary_at_most_half(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for spec in ctx.specs.of_kind(DEPLOYMENT):
        canary = spec.spec.canary
        if canary is not None and canary.percent > 50:
            yield spec.diagnostic(
                ("spec", "canary", "percent"), got=f"{canary.percent} %", expected="at most 50 % of traffic"
            )


@rule(
    "SY-MOD-003",
    "Production serves a version pinned in git.",
    target=f"spec:{DEPLOYMENT}",
    hint="set spec.serve.prod.version; production moves by pull request only",
)
def prod_pins_a_version(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for spec in ctx.specs.of_kind(DEPLOYMENT):
        serve = spec.spec.serve.get(PRODUCTION)
        if serve is not None and serve.version is None:
            yield spec.diagnostic(
                ("spec", "serve", PRODUCTION),
                got=f"@{serve.alias} with no version",
                expected="a pinned version (serve.prod.version)",
            )


@rule(
    "SY-MOD-004",
    "Production runs at least two replicas.",
    target=f"spec:{DEPLOYMENT}",
    references=("kyverno:require-pod-disruption-budget",),
    hint="set spec.replicas.min to 2 or more: one replica is one node away from an outage",
)
def prod_has_two_replicas(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for spec in ctx.specs.of_kind(DEPLOYMENT):
        if PRODUCTION in spec.spec.serve and spec.spec.replicas.min < 2:
            yield spec.diagnostic(
                ("spec", "replicas", "min"),
                got=f"{spec.spec.replicas.min} replica(s) for a deployment served in prod",
                expected="at least 2",
            )


@rule(
    "SY-MOD-005",
    "Promotion is gated on a metric and on being no worse than the serving version.",
    target=f"spec:{DEPLOYMENT}",
    hint="add gates.metrics (e.g. 'roc_auc >= 0.75') and gates.noWorseThanCurrent",
)
def gated_promotion(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for spec in ctx.specs.of_kind(DEPLOYMENT):
        gates = spec.spec.gates
        missing = [
            name
            for name, present in (
                ("metrics", bool(gates.metrics)),
                ("noWorseThanCurrent", bool(gates.no_worse_than_current)),
            )
            if not present
        ]
        if missing:
            yield spec.diagnostic(("spec", "gates"), got=f"gates without {' and '.join(missing)}", expected="both")


@rule(
    "SY-MOD-006",
    "The data checks a deployment's gates require exist in its team's features.",
    target=f"spec:{DEPLOYMENT}",
    hint="name a DataCheck of the team (features/<team>/checks/*.yaml), or add it: a gate on a check that does "
    "not exist can never pass",
)
def gated_on_existing_checks(ctx: PolicyContext) -> Iterator[Diagnostic]:
    for spec in ctx.specs.of_kind(DEPLOYMENT):
        for index, check in enumerate(spec.spec.gates.data_checks):
            if ctx.specs.named("DataCheck", check, spec.team) is None:
                known = ", ".join(s.name for s in ctx.specs.of_kind("DataCheck") if s.team == spec.team) or "none"
                yield spec.diagnostic(
                    ("spec", "gates", "dataChecks", index),
                    got=f"'{check}'",
                    expected=f"a DataCheck of team {spec.team}: {known}",
                )
