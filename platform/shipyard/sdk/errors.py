"""Shipyard's exceptions. The CLI maps them to exit codes; nothing else does.

ShipyardError
 ├── UserError            exit 1: the user can fix it; printed without a traceback
 │    ├── SpecError          bad specs: carries every Diagnostic found, not just the first
 │    ├── PolicyViolation    mandatory policies failed
 │    ├── StalePlanError     a reviewed plan no longer matches a fresh plan
 │    ├── TargetUnavailable  the target cannot be reached from here (no credentials, CLI)
 │    ├── LockHeld           someone else is applying to the target
 │    └── PluginError        a plugin failed to load or misnamed a hook
 └── InternalError        exit 3: a bug or a failed apply; traceback with --verbose
      └── ApplyError         a change failed after retries; the journal allows resuming
TransientError           raised by appliers for retryable failures (timeouts, throttling)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shipyard.sdk.model import Diagnostic


class ShipyardError(Exception):
    """Base of every error Shipyard raises on purpose."""

    exit_code = 3


class UserError(ShipyardError):
    """Something the user can fix; ``hint`` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class SpecError(UserError):
    """One or more Diagnostics, all collected before raising."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        count = len(self.diagnostics)
        super().__init__(f"{count} error{'s' if count != 1 else ''} in specs")


class PolicyViolation(SpecError):
    """Mandatory policies failed; nothing is planned or applied."""


class StalePlanError(UserError):
    pass


class TargetUnavailable(UserError):
    pass


class LockHeld(UserError):
    pass


class PluginError(UserError):
    pass


class InternalError(ShipyardError):
    exit_code = 3


class ApplyError(InternalError):
    pass


class ChangesFailed(UserError):
    """Some changes of an apply failed; the other teams' changes were still applied.

    ``failed`` maps each failed key to why; ``skipped`` lists the keys not tried because an
    earlier change of the same team failed.
    """

    def __init__(self, failed: dict[str, str], skipped: list[str]) -> None:
        lines = [f"  {key}: {why}" for key, why in failed.items()]
        if skipped:
            lines.append(f"  not tried, after a failure in the same team: {', '.join(skipped)}")
        super().__init__(
            f"{len(failed)} change(s) failed:\n" + "\n".join(lines),
            hint="fix the cause and run apply again to resume; the other teams' changes were applied",
        )
        self.failed = failed
        self.skipped = skipped


class TransientError(Exception):
    """Raised by a plane's applier for a failure worth retrying with backoff."""


def api_failure(service: str, status: int, reason: str, body: str, hints: Mapping[int, str]) -> Exception:
    """An API's error answer as ours: 5xx and 429 are ``TransientError`` (retried), the rest explained by status."""
    message = f"{service} answered {status} {reason}: {body.strip()[:300]}"
    if status >= 500 or status == 429:
        return TransientError(message)
    return TargetUnavailable(message, hint=hints.get(status, ""))
