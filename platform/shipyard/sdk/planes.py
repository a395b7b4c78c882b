"""Planes, targets, policies and local services: what plugins implement."""

from __future__ import annotations

import abc
import contextlib
import re
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from shipyard.sdk.cache import Cache, Unit
from shipyard.sdk.errors import TargetUnavailable, UserError
from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.model import Change, Diagnostic, FieldPath, Resource
from shipyard.sdk.store import PRIVATE_DIR, private_dir

S = TypeVar("S")
STATE_DIR = ".shipyard"  # git-ignored: what applying did, per target


def local_state_dir(root: Path) -> Path:
    """The local target's state folder in a checkout (its ``.shipyard/`` made private: ``ensure_state_root``)."""
    return ensure_state_root(root) / "local"


def ensure_state_root(root: Path) -> Path:
    """``root/.shipyard``, its owner's alone: created 0700, or closed to 0700 when found looser.

    What lies below (Shipyard's state, and what the libraries it runs write there: the MLflow
    database, training data, model files) is then out of other users' reach, whatever the
    umask made of it. A ``root`` that does not exist is left alone.
    """
    state = root / STATE_DIR
    if root.is_dir():
        private_dir(state)
        if state.is_dir() and stat.S_IMODE(state.stat().st_mode) != PRIVATE_DIR:
            with contextlib.suppress(PermissionError):  # another user's folder is theirs to close
                state.chmod(PRIVATE_DIR)
    return state


#: What a plane's ``pin`` read from the live target: plain JSON-able data, recorded in the plan.
Facts = Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    """Where a plan is applied: ``local`` (this machine) or a cloud environment.

    ``endpoints`` are the URLs of the services running for the target, by service name (for
    ``local``, read from the process table: ``{"mlflow": "http://127.0.0.1:5000"}``). Every
    command finds them the same way; nothing is published through the process environment.
    """

    name: str
    kind: Literal["local", "environment"]
    root: Path
    state_dir: Path
    endpoints: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.kind == "local"


@dataclass(frozen=True)
class DesiredContext:
    """What a plane reads: the repo tree, its validated specs, and the facts its ``pin`` returned.

    ``desired`` is a pure function of this: same tree, specs and facts, same Resources.
    ``live`` says whether facts were pinned from a live target; it is False when planning
    against a git revision, so both sides of a pull request plan come from git alone.
    ``providers`` are the installed planes, for ``provider`` (used by observe, apply and
    the local platform, never by ``desired``).
    """

    root: Path
    specs: SpecSet
    environment: str
    live: bool = True
    facts: Facts = field(default_factory=dict)
    providers: tuple[object, ...] = field(default=(), compare=False, repr=False)
    #: While a change is applied: the hash of its plan and the commit that plan was made at, for the
    #: provenance an applier records (``sdk.provenance``). Empty while planning: ``desired`` never reads them.
    plan: str = ""
    commit: str = ""
    #: The units (``Plane.units``) to compute, by scope; None: all. A plane with units computes, in
    #: ``desired`` and ``check``, only what belongs to these (the engine has the rest already).
    scopes: frozenset[str] | None = None
    #: Where a plane may keep slow intermediate results by the digest of their inputs (``sdk.cache``).
    cache: Cache | None = field(default=None, compare=False, repr=False)

    def wants(self, scope: str | None) -> bool:
        """Whether this evaluation computes ``scope``'s part (every part when ``scopes`` is None)."""
        return self.scopes is None or scope in self.scopes

    def provider(self, service: type[S]) -> S:
        """The installed plane that offers ``service``, an SDK protocol such as ``OnlineFeatures``.

        Example::

            features = ctx.provider(OnlineFeatures)
            row = features.online_features(ctx, target, "fraud", "fraud_scorer", {"user_id": 1})
        """
        for candidate in self.providers:
            if isinstance(candidate, service):
                return candidate
        raise UserError(
            f"no installed plane provides {service.__name__}",
            hint="install the plugin that provides it (shipyard plugins lists what is installed)",
        )


#: An applier makes one Change true on a target; ``Plane.appliers`` maps each kind to one.
Applier = Callable[[Change, DesiredContext, Target], None]


class Plane(abc.ABC):
    """A plane turns specs into Resources and, in its appliers only, changes the world.

    The engine calls, in order: ``pin`` (read the live facts desired state depends on, as
    data; they enter the plan and its hash), ``desired`` (pure: specs, files and facts in,
    Resources out), ``check``, ``observe`` (what the target holds now), and for each pending
    Change the applier its kind maps to. An applier executes its Change and never decides
    again: the Change carries what to do (the version to promote, the manifest to serve, the
    pipeline to run). It must be idempotent (the engine may repeat a change after a crash).
    Raise ``TransientError`` for failures worth retrying.

    ``order`` is the apply order (infra 10, tenancy 20, features 30, pipelines 40,
    models 50); ``ignored_fields`` maps a Resource kind to paths the server sets (or that
    travel with a Change for its applier only), which the diff ignores (``("*",)`` matches
    any one key).
    """

    name: ClassVar[str]
    order: ClassVar[int]
    ignored_fields: ClassVar[Mapping[str, Sequence[FieldPath]]] = {}
    #: Distributions whose version is part of this plane's cache digests (what computes its desired state).
    libraries: ClassVar[tuple[str, ...]] = ()

    def warm_up(self, root: Path) -> None:
        """Start slow work (a worker process importing heavy libraries) before ``desired`` is asked.

        The engine calls every plane's ``warm_up`` first, so planes load in parallel.
        """
        return  # most planes have nothing slow to start

    def pin(self, ctx: DesiredContext, target: Target) -> Facts:
        """The live facts ``desired`` needs for ``target`` (registry versions, data watermarks), as data."""
        return {}

    @abc.abstractmethod
    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        """Resources this repo declares for ``ctx.environment``, given ``ctx.facts``. Pure.

        A plane with ``units`` yields only the Resources of the scopes ``ctx.wants``.
        """

    def units(self, ctx: DesiredContext) -> Sequence[Unit] | None:
        """The parts of this plane's desired state and the inputs of each, so a plan reuses unchanged ones.

        Each Resource ``desired`` yields, and each finding of ``check``, belongs to the unit of its
        scope (a team, a stack). A unit's ``paths`` and ``facts`` must cover everything its part
        reads: two evaluations with the same inputs give the same Resources and findings. The
        engine then computes only the units whose inputs it has not seen, and says which it
        reused. None (the default): the plane is computed whole every time.
        """
        return None

    def check(self, ctx: DesiredContext, resources: Sequence[Resource]) -> Iterable[Diagnostic]:
        """Checks of what the desired state stands on (not of the specs), run during plan.

        ``resources`` are this plane's desired Resources (with ``units``: those of the scopes
        ``ctx.wants``, whose findings alone it returns). Errors stop plan and apply like
        mandatory policies. Example: Great Expectations suites on a sample of each view's data.
        """
        return ()

    def observe(self, ctx: DesiredContext, target: Target) -> Iterable[Resource]:
        """Resources that exist on ``target`` now."""
        raise TargetUnavailable(
            f"the {self.name} plane cannot observe target '{target.name}' yet",
            hint="plan against 'local' or 'base:<rev>'",
        )

    def appliers(self, target: Target) -> Mapping[str, Applier]:
        """The applier of each Resource kind this plane applies to ``target``."""
        return {}

    def apply(self, change: Change, ctx: DesiredContext, target: Target) -> None:
        """Make ``change`` true on ``target``, with the applier of its kind."""
        applier = self.appliers(target).get(change.kind)
        if applier is None:
            raise TargetUnavailable(
                f"the {self.name} plane cannot apply {change.kind} to target '{target.name}'",
                hint="apply to 'local'",
            )
        applier(change, ctx, target)

    # -- the local platform (shipyard up) ---------------------------------------------------------

    def prepare(self, ctx: DesiredContext, target: Target) -> Iterable[str]:
        """Before a local ``up`` plans: provide what a laptop lacks (synthetic data); returns lines to show."""
        return ()

    def smoke(self, ctx: DesiredContext, target: Target) -> Iterable[SmokeResult]:
        """After a local ``up`` applied: one request to each thing this plane serves."""
        return ()


@dataclass(frozen=True)
class SmokeResult:
    """What one served deployment answered to ``up``'s smoke request, or why it could not."""

    deployment: str
    url: str | None = None
    version: int | None = None
    alias: str = ""
    features_as_of: str | None = None
    prediction: Any = None
    error: str = ""
    endpoints: tuple[str, ...] = ()  # the inference URLs a person can call

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class PolicyContext:
    """What a policy sees. ``resources`` is None when only specs were loaded (validate); ``root`` is the
    repository, for rules on its files (``target="repository"``: CODEOWNERS, workflows), read with
    ``sdk.files.linked`` first."""

    specs: SpecSet
    resources: Sequence[Resource] | None = None
    root: Path | None = None


#: A rule's id: ``SY-<AREA>-<NNN>`` for Shipyard's own, ``<PREFIX>-<AREA>-<NNN>`` for a plugin's; stable forever.
RULE_ID = re.compile(r"^[A-Z][A-Z0-9]*-[A-Z][A-Z0-9]*-[0-9]{3}$")


@dataclass(frozen=True)
class Policy:
    """A guardrail: a pure function from specs/resources to Diagnostics, with what a reader needs to act on it.

    ``mandatory`` failures stop plan and apply; advisory ones are reported. ``target`` says what
    the rule reads: ``spec:<Kind>``, ``resource:<plane>/<kind>``, a Kubernetes ``<apiVersion>/<kind>``,
    a Pulumi type (``aws:s3/bucket:Bucket``) or ``repository``. ``references`` name the upstream
    checks it corresponds to (``checkov:CKV_AWS_19``, ``awsguard:...``, ``kube-linter:...``,
    ``kyverno:...``). Write one with ``rule``::

        @rule("SY-TEN-003", "A GPU quota comes with a budget.", target="spec:Team", mandatory=False)
        def gpu_needs_budget(ctx: PolicyContext) -> Iterator[Diagnostic]: ...
    """

    id: str
    summary: str
    check: Callable[[PolicyContext], Iterable[Diagnostic]]
    mandatory: bool = True
    needs_resources: bool = False
    target: str = "spec"
    references: tuple[str, ...] = ()
    hint: str = ""

    def __post_init__(self) -> None:
        if not RULE_ID.match(self.id):
            raise ValueError(f"policy id '{self.id}' is not <PREFIX>-<AREA>-<NNN> (e.g. SY-MOD-004)")

    @property
    def enforcement(self) -> str:
        return "mandatory" if self.mandatory else "advisory"


def rule(
    id: str,
    title: str,
    *,
    target: str,
    mandatory: bool = True,
    references: Sequence[str] = (),
    hint: str = "",
    needs_resources: bool = False,
) -> Callable[[Callable[[PolicyContext], Iterable[Diagnostic]]], Policy]:
    """Make a check function a ``Policy`` (see ``Policy``): the decorated name is the rule."""

    def make(check: Callable[[PolicyContext], Iterable[Diagnostic]]) -> Policy:
        return Policy(id, title, check, mandatory, needs_resources, target, tuple(references), hint)

    return make


@dataclass(frozen=True)
class LocalService:
    """A process the local platform runs (``shipyard up``) before it applies, bound to 127.0.0.1.

    ``command`` gets the port chosen for it and the state folder, and returns argv. Once it
    runs, planes find its URL in ``Target.endpoints`` under ``name``. One runs per state
    folder: its store there is never served by two at once.

    ``diagnose`` gets the state folder and the output of a start that exited before it was
    ready, and returns the error that says what is wrong and how to fix it (a damaged
    store, named, with the command that starts it afresh), or None to show its output.
    """

    name: str
    description: str
    command: Callable[[int, Path], Sequence[str]]
    health_path: str = "/"
    diagnose: Callable[[Path, str], UserError | None] = field(default=lambda state, output: None, compare=False)
    #: Variables its process gets beside the telemetry switches (a server's own settings).
    env: Mapping[str, str] = field(default_factory=dict)
