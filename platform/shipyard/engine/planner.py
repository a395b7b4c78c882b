"""Makes plans: load specs, pin each plane's live facts, compute desired state (pure), observe, diff."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

from shipyard.core.plan import Plan, fingerprint, make_plan
from shipyard.core.policies import run_policies
from shipyard.core.repo import load_specs
from shipyard.core.waivers import Waiver, load_waivers, waive
from shipyard.engine import local
from shipyard.engine.evaluation import Evaluation, code_version, evaluate, repository_cache
from shipyard.engine.policies import Rules, rules_in_force
from shipyard.engine.registry import Registry
from shipyard.engine.revisions import checkout, commit_of, head_commit
from shipyard.engine.targets import TargetRef
from shipyard.sdk.cache import Cache
from shipyard.sdk.errors import SpecError, UserError
from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.model import Diagnostic, Resource
from shipyard.sdk.planes import DesiredContext, Target


@dataclass(frozen=True)
class Validation:
    """The specs, the findings of the rules that read only specs and files, and what the rest need."""

    specs: SpecSet
    findings: tuple[Diagnostic, ...]
    rules: Rules = field(default_factory=lambda: Rules((), {}))
    waivers: tuple[Waiver, ...] = ()
    root: Path | None = None

    def resource_findings(self, resources: Sequence[Resource]) -> tuple[Diagnostic, ...]:
        """The findings of the rules that read Resources (desired state), waived where the ledger says."""
        rules = [p for p in self.rules.policies if p.needs_resources]
        found = run_policies(rules, self.specs, resources, self.root)
        return tuple(waive(found, self.waivers, {p.id for p in rules}))


@dataclass(frozen=True)
class PlanResult:
    """A plan with every finding, and what it was computed from: each plane's context (its
    pinned facts included) and the resolved target (None for a base revision)."""

    plan: Plan
    findings: tuple[Diagnostic, ...]
    contexts: Mapping[str, DesiredContext]
    target: Target | None
    #: How the desired state was computed: per side (``head``, and ``base`` for a base plan), each plane's
    #: units reused from the cache and computed (``Evaluation``).
    evaluations: Mapping[str, Evaluation] = field(default_factory=dict)


def validate(registry: Registry, root: Path, today: date | None = None) -> Validation:
    """Load every spec (SpecError lists every problem) and run the rules that need only specs, with the
    waivers in force on ``today`` (the UTC date now unless given)."""
    specs = load_specs(root, registry.kinds)
    rules = rules_in_force(registry, root)
    waivers, ledger = load_waivers(root, rules.ids, today or datetime.now(UTC).date())
    spec_rules = [p for p in rules.policies if not p.needs_resources]
    findings = waive(run_policies(spec_rules, specs, root=root), waivers, {p.id for p in spec_rules})
    return Validation(specs, (*ledger, *findings), rules, tuple(waivers), root)


def resolve(registry: Registry, root: Path, ref: TargetRef) -> Target:
    """The Target planes observe and apply to; the local one with the URLs of its running services."""
    target = ref.resolve(root)
    if target.is_local:
        target = replace(target, endpoints=local.endpoints(registry, target.state_dir))
    return target


def contexts(
    registry: Registry,
    root: Path,
    specs: SpecSet,
    environment: str,
    target: Target | None,
    cache: Cache | None = None,
) -> dict[str, DesiredContext]:
    """Each plane's context: with ``target``, the facts its ``pin`` read from it; without, git alone."""
    base = DesiredContext(root, specs, environment, live=target is not None, providers=registry.providers, cache=cache)
    if target is None:
        return {plane.name: base for plane in registry.planes}
    return {plane.name: replace(base, facts=plane.pin(base, target)) for plane in registry.planes}


def desired_state(registry: Registry, ctxs: Mapping[str, DesiredContext], cache: Cache | None = None) -> list[Resource]:
    """Every plane's desired Resources, reusing the units ``cache`` holds (none kept when it is not given)."""
    return evaluate(registry.planes, ctxs, cache or Cache(None, code_version()), check=False).resources


def plan(
    registry: Registry,
    root: Path,
    ref: TargetRef,
    environment: str = "local",
    validation: Validation | None = None,
    *,
    check_data: bool = True,
) -> PlanResult:
    """The plan from ``ref``'s state to this tree, with every policy finding.

    A cloud or local target plans its own environment's desired state over the facts each
    plane pins from it; a base revision plans ``environment`` from git alone (a PR plan
    compares like with like). ``validation`` reuses specs the caller has already loaded and
    checked; ``check_data=False`` skips the planes' data checks (apply's verification needs
    only the diff).
    """
    if ref.kind != "base":
        environment = ref.name
    validation = validation or validate(registry, root)
    ref.require_declared(validation.specs)  # at once: an unknown environment is no plane's problem
    target = None if ref.kind == "base" else resolve(registry, root, ref)
    cache = repository_cache(root)
    ctxs = contexts(registry, root, validation.specs, environment, target, cache)
    head = evaluate(registry.planes, ctxs, cache, check=check_data)
    desired = head.resources
    findings = validation.findings + validation.resource_findings(desired) + head.findings
    evaluations = {"head": head}
    seen: dict[str, str] = {}
    observed: list[Resource] = []
    if target is None:
        evaluations["base"] = _evaluate_at(registry, root, ref.revision, environment, cache)
        # Positions from a temporary tree would point nowhere; the keys are what matter.
        observed = [replace(r, source=None) for r in evaluations["base"].resources]
    else:
        for plane in registry.planes:
            own = list(plane.observe(ctxs[plane.name], target))
            seen[plane.name] = fingerprint(own)
            observed += own
    facts = {name: dict(ctx.facts) for name, ctx in ctxs.items() if ctx.facts}
    made = make_plan(ref.name, desired, observed, registry.rules, facts)
    bound = replace(
        made,
        observed=seen,
        commit=head_commit(root),
        base=commit_of(root, ref.revision) if target is None else "",
    )
    return PlanResult(bound, findings, ctxs, target, evaluations)


def _evaluate_at(registry: Registry, root: Path, revision: str, environment: str, cache: Cache) -> Evaluation:
    """``revision``'s desired state, from git alone: every unit the change did not touch is reused from ``cache``."""
    with checkout(root, revision, keep=None if cache.folder is None else cache.folder / "trees") as tree:
        try:
            specs = load_specs(tree, registry.kinds)
        except SpecError as error:
            raise UserError(
                f"the specs at base revision '{revision}' do not validate ({error.message})",
                hint="plan against a revision whose specs are valid",
            ) from error
        return evaluate(registry.planes, contexts(registry, tree, specs, environment, None, cache), cache, check=False)
