"""Planes, targets, policies and local services: what plugins implement."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, Literal, TypeVar

from shipyard.sdk.errors import TargetUnavailable, UserError
from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.model import Change, Diagnostic, FieldPath, Resource

T = TypeVar("T")
STATE_DIR = ".shipyard"  # git-ignored: what applying did, per target


def local_state_dir(root: Path) -> Path:
    """The local target's state folder in a checkout."""
    return root / STATE_DIR / "local"


@dataclass(frozen=True)
class Target:
    """Where a plan is applied: ``local`` (this machine) or a cloud environment."""

    name: str
    kind: Literal["local", "environment"]
    root: Path
    state_dir: Path

    @property
    def is_local(self) -> bool:
        return self.kind == "local"


@dataclass(frozen=True)
class DesiredContext:
    """What ``Plane.desired`` may read: the repo tree and its validated specs.

    ``live`` says whether a plane may also read the environment's live state to pin
    what specs leave open (the newest event to materialize up to, the model version
    an alias should move to). It is False when planning against a git revision, so
    both sides of a pull request plan are computed alike, from git alone.
    """

    root: Path
    specs: SpecSet
    environment: str
    live: bool = True


class Plane(abc.ABC):
    """A plane turns specs into Resources and, in its applier only, changes the world.

    ``desired`` is pure: same tree, same Resources, no side effects. ``observe``
    reads a target; ``apply`` makes one Change true on it and must be idempotent
    (the engine may repeat a change after a crash). Raise ``TransientError`` for
    failures worth retrying. The engine always plans afresh (``desired``, then
    ``observe``) in the same process before it applies, so a plane may keep what
    ``desired`` read for its applier (``Readings`` does that).

    ``order`` is the apply order (infra 10, tenancy 20, features 30, pipelines 40,
    models 50); ``ignored_fields`` maps a Resource kind to paths the server sets,
    which the diff ignores (``("*",)`` matches any one key).
    """

    name: ClassVar[str]
    order: ClassVar[int]
    ignored_fields: ClassVar[Mapping[str, Sequence[FieldPath]]] = {}

    @abc.abstractmethod
    def desired(self, ctx: DesiredContext) -> Iterable[Resource]:
        """Resources this repo declares for ``ctx.environment``."""

    def warm_up(self, root: Path) -> None:
        """Start slow work (a worker process importing heavy libraries) before ``desired`` is asked.

        The engine calls every plane's ``warm_up`` first, so planes load in parallel.
        """
        return  # most planes have nothing slow to start

    def check(self, ctx: DesiredContext) -> Iterable[Diagnostic]:
        """Checks of the data behind the desired state (not of the specs), run during plan.

        Errors stop plan and apply like mandatory policies. Example: Great
        Expectations suites on a sample of each feature view's data.
        """
        return ()

    def observe(self, target: Target) -> Iterable[Resource]:
        """Resources that exist on ``target`` now."""
        raise TargetUnavailable(
            f"the {self.name} plane cannot observe target '{target.name}' yet",
            hint="plan against 'local' or 'base:<rev>'",
        )

    def apply(self, change: Change, target: Target) -> None:
        """Make ``change`` true on ``target``."""
        raise TargetUnavailable(
            f"the {self.name} plane cannot apply to target '{target.name}' yet",
            hint="apply to 'local'",
        )


class Readings(Generic[T]):
    """What a plane read to compute desired state, kept per checkout and environment.

    The engine plans afresh in the same process before it observes or applies (see
    ``Plane``), so ``observe`` and ``apply`` find here the reading of the plan they follow.
    A reading is reused only for the same loaded specs and the same ``live`` setting.
    """

    def __init__(self, plane: str) -> None:
        self.plane = plane
        self._kept: dict[tuple[Path, str], tuple[DesiredContext, T]] = {}

    def get(self, ctx: DesiredContext) -> T | None:
        kept = self._kept.get((ctx.root, ctx.environment))
        if kept is None or kept[0].specs is not ctx.specs or kept[0].live != ctx.live:
            return None
        return kept[1]

    def put(self, ctx: DesiredContext, reading: T) -> T:
        self._kept[(ctx.root, ctx.environment)] = (ctx, reading)
        return reading

    def of(self, target: Target) -> tuple[DesiredContext, T]:
        """The context and reading of the plan last made for ``target``."""
        kept = self._kept.get((target.root, target.name))
        if kept is None:
            raise UserError(f"the {self.plane} plane reaches a target only after planning it", hint="run shipyard plan")
        return kept


@dataclass(frozen=True)
class PolicyContext:
    """What a policy sees. ``resources`` is None when only specs were loaded (validate)."""

    specs: SpecSet
    resources: Sequence[Resource] | None = None


@dataclass(frozen=True)
class Policy:
    """A guardrail: a pure function from specs/resources to Diagnostics.

    ``mandatory`` failures stop plan and apply; advisory ones are reported.
    Example::

        Policy("tenancy/gpu-budget", "GPU quota needs a budget", check=no_gpu_without_budget)
    """

    id: str
    summary: str
    check: Callable[[PolicyContext], Iterable[Diagnostic]]
    mandatory: bool = True
    needs_resources: bool = False


def _nothing(url: str) -> Mapping[str, str]:
    return {}


@dataclass(frozen=True)
class LocalService:
    """A process the local platform runs (``shipyard up``) before it applies, bound to 127.0.0.1.

    ``command`` gets the port chosen for it and the state folder, and returns argv;
    ``exports`` gets its URL and returns the environment variables through which
    the planes find it (``{"MLFLOW_TRACKING_URI": url}``).
    """

    name: str
    description: str
    command: Callable[[int, Path], Sequence[str]]
    health_path: str = "/"
    exports: Callable[[str], Mapping[str, str]] = _nothing
