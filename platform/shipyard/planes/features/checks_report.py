"""DataCheck results as Diagnostics that point at the expectation's line in the check's YAML."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from shipyard.sdk import Diagnostic, Severity, Spec, SpecError

RULE = "features/data-check"


class DataCheckFailed(SpecError):
    """A data gate failed: the step it guards (materialization, training) did not run."""

    def __init__(self, diagnostics: Sequence[Diagnostic], what: str) -> None:
        count = len(diagnostics)
        super().__init__(
            diagnostics,
            f"{what}: {count} data check{'s' if count != 1 else ''} failed",
            hint="fix the data (or the expectation, in review) and apply again",
        )


def check_findings(check: Spec, path: str, result: dict[str, Any], *, sampled: bool) -> Iterator[Diagnostic]:
    """One Diagnostic per failed expectation; a warning (plan) or an error (gate) when the data is missing."""
    from shipyard.planes.features.checks import describe

    def snippet(position: Any) -> str | None:
        return check.lines[position.line - 1] if 0 < position.line <= len(check.lines) else None

    if result["missing"]:
        yield Diagnostic(
            RULE,
            f"{check.team}/{check.name}: no data at {path}",
            check.position("spec"),
            "spec",
            Severity.WARNING if sampled else Severity.ERROR,
            hint="on the local target, `shipyard seed` writes each team's synthetic data",
            snippet=snippet(check.position("spec")),
        )
        return
    scope = f"a sample of {result['rows']} rows" if sampled else f"all {result['rows']} rows"
    for failure in result["failures"]:
        index = failure["index"]
        position = check.position("spec", "expectations", index)
        hint = "the data breaks this expectation; fix the data upstream, or change the expectation in review"
        if failure.get("missingColumns"):
            hint = "name a column the data has, or add the column to the data upstream"
        yield Diagnostic(
            RULE,
            f"{check.team}/{check.name}: {describe(failure)} [{scope} of {path}]",
            position,
            f"spec.expectations[{index}]",
            Severity.ERROR,
            hint=hint,
            snippet=snippet(position),
        )
