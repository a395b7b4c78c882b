"""Where each deployment's alias should point, and the manifests serving it: pure, from specs and pinned facts.

The facts are what ``pin`` read from the environment's registry, per deployment
(``"<team>/<name>"``)::

    {"alias": 3,                      # the version the alias points at now (None: nothing)
     "newest": 4,                     # the newest version not rejected (None: none)
     "versions": {"3": {...}, "4": {  # each version the decision may need
         "metrics": {"roc_auc": 0.81}, "dataChecks": ["transactions"], "datasets": ["fraud-holdout"],
         "movedByShipyard": false, "storage": "mlflow-artifacts:/1/models/m-4/artifacts"}}}

Git pins the version where ``serve.<env>.version`` says so; where it leaves it open, the
newest version moves in if it passes the gates against the version served now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shipyard.planes.models.gates import Candidate, GateFailure, evaluate
from shipyard.planes.models.render import Serving, inference_service, standard_canary
from shipyard.planes.models.spec import ModelDeploymentSpec
from shipyard.sdk import DesiredContext, Spec, content_digest
from shipyard.sdk.platform import team_namespace


@dataclass(frozen=True)
class Decision:
    """Where one deployment's alias should point, what serves it, and which newer version was held back."""

    spec: Spec
    alias: str
    version: int | None  # None: nothing to serve yet (or unresolved, when planned from git alone)
    storage: str
    manifest: dict[str, Any]  # the InferenceService serving it
    held_back: tuple[int, tuple[GateFailure, ...]] | None = None  # a newer version and the gates it failed
    canary: tuple[dict[str, Any], ...] = ()  # Standard mode's canary InferenceService and HTTPRoute

    @property
    def manifests(self) -> tuple[dict[str, Any], ...]:
        return (self.manifest, *self.canary)

    @property
    def alias_body(self) -> dict[str, Any]:
        """The ModelAlias Resource's body: the move a reviewer reads."""
        return {"registeredModel": self.spec.spec.registered_model, "alias": self.alias, "version": self.version}

    @property
    def alias_payload(self) -> dict[str, Any]:
        """What the alias applier needs beside it: what serves the version (for a local canary)."""
        return {"storageUri": self.storage, "manifest": content_digest(self.manifest)}


def label(spec: Spec) -> str:
    return f"{spec.team}/{spec.name}"


def decide(ctx: DesiredContext, spec: Spec) -> Decision:
    """The decision for ``spec`` in ``ctx.environment``, from its pinned facts (none: from git alone)."""
    deployment: ModelDeploymentSpec = spec.spec
    serve = deployment.serve[ctx.environment]
    model = deployment.registered_model
    facts: Mapping[str, Any] | None = ctx.facts.get("deployments", {}).get(label(spec))
    version, held_back = serve.version, None
    if facts is not None and version is None:
        current, newest = facts["alias"], facts["newest"]
        version = current
        if newest is not None and newest != current:
            failures = evaluate(deployment.gates, candidate(facts, newest), baseline(facts, current))
            if failures:
                held_back = (newest, tuple(failures))
            else:
                version = newest
    storage = _storage(facts, model, version, f"models:/{model}@{serve.alias}")
    assert spec.team is not None
    namespace = team_namespace(ctx.specs, spec.team)
    serving = Serving(version, storage)
    canary: tuple[dict[str, Any], ...] = ()
    if serve.canary is None or deployment.canary is None:
        manifest = inference_service(deployment, spec.name, spec.team, namespace, serving)
    else:
        # A canary declared in git (cloud environments): KServe splits the traffic, the mode decides how.
        trial = Serving(serve.canary, _storage(facts, model, serve.canary, f"models:/{model}/{serve.canary}"))
        percent = deployment.canary.percent
        if deployment.mode == "Serverless":
            manifest = inference_service(deployment, spec.name, spec.team, namespace, trial, canary_percent=percent)
        else:
            manifest = inference_service(deployment, spec.name, spec.team, namespace, serving)
            canary = tuple(standard_canary(deployment, spec.name, spec.team, namespace, trial, percent))
    return Decision(spec, serve.alias, version, storage, manifest, held_back, canary)


def candidate(facts: Mapping[str, Any], version: int) -> Candidate:
    """A version's pinned facts as the gates read them."""
    found = facts["versions"][str(version)]
    return Candidate(version, found["metrics"], frozenset(found["dataChecks"]), frozenset(found["datasets"]))


def baseline(facts: Mapping[str, Any], current: int | None) -> Candidate | None:
    """The version a newer one must be no worse than: the one served now, if Shipyard moved the alias there.

    A version someone moved the alias to by hand is drift to undo, not a bar to clear.
    """
    if current is None or not facts["versions"][str(current)]["movedByShipyard"]:
        return None
    return candidate(facts, current)


def _storage(facts: Mapping[str, Any] | None, model: str, version: int | None, unresolved: str) -> str:
    """Where the version's files are (what KServe's storage initializer downloads), once known."""
    if facts is None or version is None or str(version) not in facts["versions"]:
        return unresolved  # planned from git alone, or nothing trained yet
    storage: str = facts["versions"][str(version)]["storage"]
    return storage
