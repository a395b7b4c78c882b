"""Where each deployment's alias should point, and the manifests serving it: pure, from specs and pinned facts.

The facts are what ``pin`` read from the environment's registry, per deployment
(``"<team>/<name>"``)::

    {"alias": 3,                      # the version the alias points at now (None: nothing)
     "newest": 4,                     # the newest version not rejected (None: none)
     "versions": {"3": {...}, "4": {  # each version the decision may need
         "metrics": {"roc_auc": 0.81}, "dataChecks": ["transactions"], "datasets": ["fraud-holdout"],
         "movedByShipyard": false, "storage": "mlflow-artifacts:/1/models/m-4/artifacts",
         "canaryPassed": null,        # the version it passed a local canary beside (None: none)
         "provenance": {...}}},       # its run's provenance tags (None: not required, in clouds)
     "serving": [3, 4]}               # local target only: the versions its model servers run

Git pins the version where ``serve.<env>.version`` says so; where it leaves it open, the
newest version moves in if it passes the gates against the version served now.

On the local target the decision also says how the alias moves (``rollout``, in the
ModelAlias payload), so the applier never chooses: ``canary`` when the deployment has a
canary and a model server runs the version the alias is on (a canary an apply killed
halfway left both servers running: it is run again); ``verdict`` when none runs it but
the version's passing canary verdict beside it is on record (the apply was killed
between the verdict and the move); ``direct`` when there is nothing to compare with.
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
    rollout: str | None = None  # local target: how the alias moves (ROLLOUTS); None: it does not move, or not local

    @property
    def manifests(self) -> tuple[dict[str, Any], ...]:
        return (self.manifest, *self.canary)

    @property
    def alias_body(self) -> dict[str, Any]:
        """The ModelAlias Resource's body: the move a reviewer reads."""
        return {"registeredModel": self.spec.spec.registered_model, "alias": self.alias, "version": self.version}

    @property
    def alias_payload(self) -> dict[str, Any]:
        """What the alias applier needs beside it: what serves the version, and how it moves there (local)."""
        payload: dict[str, Any] = {"storageUri": self.storage, "manifest": content_digest(self.manifest)}
        if self.rollout is not None:
            payload["rollout"] = self.rollout
        return payload


#: How the local alias applier moves an alias (``Decision.rollout``): after a canary it runs beside
#: the version the alias is on; after the passing canary verdict on record; or at once.
CANARY, VERDICT, DIRECT = "canary", "verdict", "direct"
ROLLOUTS = (CANARY, VERDICT, DIRECT)


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
    moving = rollout(deployment, facts, version)
    return Decision(spec, serve.alias, version, storage, manifest, held_back, canary, moving)


def rollout(deployment: ModelDeploymentSpec, facts: Mapping[str, Any] | None, version: int | None) -> str | None:
    """How the alias moves to ``version`` on the local target (whose facts say what serves); None: it stays."""
    if facts is None or "serving" not in facts or version is None or version == facts["alias"]:
        return None
    current = facts["alias"]
    if deployment.canary is None or current is None:
        return DIRECT
    if current in facts["serving"]:
        return CANARY  # the version the alias is on serves: the new one runs beside it first
    found = facts["versions"].get(str(version), {})
    if found.get("canaryPassed") == current:
        return VERDICT  # it passed its canary beside the current version; the move did not happen
    return DIRECT  # nothing serves the current version: there is nothing to compare with


def candidate(facts: Mapping[str, Any], version: int) -> Candidate:
    """A version's pinned facts as the gates read them."""
    found = facts["versions"][str(version)]
    return Candidate(
        version,
        found["metrics"],
        frozenset(found["dataChecks"]),
        frozenset(found["datasets"]),
        provenance=found.get("provenance"),
    )


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
