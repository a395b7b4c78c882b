"""Shipyard's exceptions. The CLI maps them to exit codes; nothing else does.

Every error Shipyard raises on purpose is a ``ShipyardError``: a message, a hint saying how
to fix it, and an exit code. ``tests/test_errors.py`` checks this drawing against the real
subclasses, the planes' included::

    ShipyardError                exit 3 unless a subclass says otherwise
     ├── UserError               exit 1: the user can fix it; printed without a traceback
     │    ├── SpecError             bad specs: carries every Diagnostic found, not just the first
     │    │    ├── PolicyViolation     mandatory policies failed
     │    │    └── DataCheckFailed     (features) data failed its checks; nothing was written
     │    ├── StalePlanError        a reviewed plan no longer matches a fresh plan
     │    ├── TargetUnavailable     the target cannot be reached from here (no credentials, CLI, server)
     │    ├── LockHeld              someone else is applying to the target
     │    ├── PluginError           a plugin failed to load or misnamed a hook
     │    ├── MissingExtra          an optional dependency is not installed; names the install command
     │    ├── PromotionRefused      (models) a version failed its gates: the alias did not move
     │    └── CanaryRolledBack      (models) the canary did worse than the version it would replace
     ├── TransientError          exit 3: worth retrying (timeouts, throttling, 5xx); apply retries it
     └── InternalError           exit 3: a bug or a failed apply; traceback with --verbose
          ├── ApplyError            a change failed after retries; the journal allows resuming
          │    └── ChangesFailed       some changes failed; the other teams' changes were applied
          └── WorkerError           a plane's worker process died or broke its protocol
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shipyard.sdk.model import Diagnostic


class ShipyardError(Exception):
    """Base of every error Shipyard raises on purpose: what happened, and how to fix it."""

    exit_code = 3

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message + (f"\nhint: {self.hint}" if self.hint else "")


class UserError(ShipyardError):
    """Something the user can fix; ``hint`` says how."""

    exit_code = 1


class SpecError(UserError):
    """One or more Diagnostics, all collected before raising.

    ``stopped`` says what they stopped when that is more than loading the specs (a data gate
    before materializing, a reference that names nothing); it becomes the message.
    """

    def __init__(self, diagnostics: Iterable[Diagnostic], stopped: str = "", hint: str = "") -> None:
        self.diagnostics = tuple(diagnostics)
        self.stopped = stopped
        count = len(self.diagnostics)
        super().__init__(stopped or f"{count} error{'s' if count != 1 else ''} in specs", hint)


class PolicyViolation(SpecError):
    """Mandatory policies failed; nothing is planned or applied."""


class StalePlanError(UserError):
    """The reviewed plan differs from a fresh one: the repo or the target moved since the review."""


class TargetUnavailable(UserError):
    """The target cannot be reached from here."""


class LockHeld(UserError):
    """Another apply holds the target's lock."""


class PluginError(UserError):
    """A plugin failed to load, or implements a hook that does not exist."""


class MissingExtra(UserError):
    """A library an optional extra provides is not installed."""


class TransientError(ShipyardError):
    """Raised by a plane for a failure worth retrying with backoff (apply retries it)."""


class InternalError(ShipyardError):
    """A bug, or a failure Shipyard cannot explain as the user's."""


class ApplyError(InternalError):
    """A change failed (after retries, for transient failures); run apply again to resume."""


class ChangesFailed(ApplyError):
    """Some changes of an apply failed; the other teams' changes were still applied.

    ``failed`` maps each failed key to why; ``skipped`` lists the keys not tried because an
    earlier change of the same team failed. Exit 3, like any failed apply.
    """

    def __init__(self, failed: Mapping[str, str], skipped: Iterable[str]) -> None:
        self.failed = dict(failed)
        self.skipped = list(skipped)
        lines = [f"  {key}: {why}" for key, why in self.failed.items()]
        if self.skipped:
            lines.append(f"  not tried, after a failure in the same team: {', '.join(self.skipped)}")
        super().__init__(
            f"{len(self.failed)} change(s) failed:\n" + "\n".join(lines),
            hint="fix the cause and run apply again to resume; the other teams' changes were applied",
        )


def api_failure(service: str, status: int, reason: str, body: str, hints: Mapping[int, str]) -> ShipyardError:
    """An API's error answer as ours: 5xx and 429 are ``TransientError`` (retried), the rest explained by status."""
    message = f"{service} answered {status} {reason}: {body.strip()[:300]}"
    if status >= 500 or status == 429:
        return TransientError(message)
    return TargetUnavailable(message, hint=hints.get(status, ""))
