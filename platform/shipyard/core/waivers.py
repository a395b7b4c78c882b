"""Waivers: ``policies/waivers.yaml``, the one ledger of accepted exceptions to mandatory rules.

Example::

    waivers:
      - rule: SY-MOD-003
        resource: "ModelDeployment/fraud/*"   # a glob over what the finding is about, or its file
        reason: "one replica until the March traffic review"
        approver: "@platform-lead"
        expires: 2027-03-31

A waived finding stays in every report, marked waived with who, why and until when; it no
longer blocks. The ledger is checked like any spec: a waiver that has expired, names an unknown
rule, or lacks a reason or approver is a mandatory finding at its own line; one that matches
nothing is advisory. Pure: the date is passed in (``today``), so one clock decides everywhere.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from pydantic import Field

from shipyard.core.specs import model_diagnostics
from shipyard.core.yamlsource import read_yaml
from shipyard.sdk.errors import SpecError
from shipyard.sdk.files import linked
from shipyard.sdk.kinds import SpecModel
from shipyard.sdk.model import Diagnostic, Severity, SourcePosition
from shipyard.sdk.planes import RULE_ID

WAIVERS_FILE = "policies/waivers.yaml"


class WaiverSpec(SpecModel):
    rule: str = Field(pattern=RULE_ID.pattern, description="The id of the rule waived, e.g. SY-MOD-003")
    resource: str = Field(
        min_length=1,
        description="A glob over what the finding is about (a spec ref such as ModelDeployment/fraud/fraud-scorer, "
        "or a resource key) or over its file",
    )
    reason: str = Field(min_length=1, description="Why the exception is accepted")
    approver: str = Field(min_length=1, description="Who accepted it (a GitHub handle)")
    expires: date = Field(description="The last day it holds (YYYY-MM-DD)")


class WaiverFile(SpecModel):
    waivers: list[WaiverSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Waiver:
    spec: WaiverSpec
    position: SourcePosition

    def covers(self, finding: Diagnostic) -> bool:
        if finding.rule != self.spec.rule:
            return False
        where = [finding.subject, finding.position.file if finding.position else ""]
        return any(w and fnmatch.fnmatchcase(w, self.spec.resource) for w in where)

    @property
    def note(self) -> str:
        s = self.spec
        return f"waived until {s.expires.isoformat()} by {s.approver}: {s.reason}"


def load_waivers(root: Path, rules: Collection[str], today: date) -> tuple[list[Waiver], list[Diagnostic]]:
    """The waivers in force, and the ledger's own findings (expired, unknown rule, malformed: all mandatory)."""
    path = root / WAIVERS_FILE
    if not path.exists() and not path.is_symlink():
        return [], []
    link = linked(root, path)
    if link is not None:
        raise SpecError([link])
    documents, problems = read_yaml(path, WAIVERS_FILE)
    if problems:
        return [], problems
    if not documents:
        return [], []
    doc = documents[0]
    ledger, problems = model_diagnostics(doc, (), WaiverFile)
    if ledger is None:
        return [], [replace(p, rule="waivers/invalid") for p in problems]
    waivers, findings = [], []

    def at(index: int, key: str, rule: str, *, got: str, expected: str, hint: str) -> Diagnostic:
        """A finding on waiver ``index``'s ``key``, with its line."""
        position = doc.position(("waivers", index, key))
        return Diagnostic.mismatch(
            rule,
            got=got,
            expected=expected,
            position=position,
            key_path=f"waivers[{index}].{key}",
            snippet=doc.snippet(position),
            hint=hint,
        )

    for index, spec in enumerate(ledger.waivers):
        if spec.rule not in rules:
            findings.append(
                at(
                    index,
                    "rule",
                    "waivers/unknown-rule",
                    got=f"a waiver of '{spec.rule}'",
                    expected="the id of a rule `shipyard policies` lists",
                    hint="check the id, or delete the waiver",
                )
            )
        elif spec.expires < today:
            findings.append(
                at(
                    index,
                    "expires",
                    "waivers/expired",
                    got=f"a waiver of {spec.rule} for '{spec.resource}' that expired on {spec.expires.isoformat()}",
                    expected="a waiver still in force",
                    hint="fix what the rule finds, or renew the waiver with its approver",
                )
            )
        else:
            waivers.append(Waiver(spec, doc.position(("waivers", index))))
    return waivers, findings


def waive(findings: Iterable[Diagnostic], waivers: Sequence[Waiver], ran: Collection[str]) -> list[Diagnostic]:
    """``findings`` with each one a waiver covers marked waived; an advisory finding for each waiver of a rule in
    ``ran`` that covered nothing (a waiver of a rule that did not run here is not judged)."""
    used: set[int] = set()
    out = []
    for finding in findings:
        index = next((i for i, w in enumerate(waivers) if w.covers(finding)), None)
        if index is None:
            out.append(finding)
            continue
        used.add(index)
        out.append(replace(finding, severity=Severity.WAIVED, hint=waivers[index].note))
    for index, waiver in enumerate(waivers):
        if index not in used and waiver.spec.rule in ran:
            out.append(
                Diagnostic.mismatch(
                    "waivers/unused",
                    got=f"a waiver of {waiver.spec.rule} for '{waiver.spec.resource}' that matches no finding",
                    expected="a waiver that covers a finding",
                    position=waiver.position,
                    hint="the rule passes there now: delete the waiver",
                    severity=Severity.WARNING,
                )
            )
    return out
