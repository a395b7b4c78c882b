"""Provenance: the MLflow run tags that say a model version came from a pipeline run Shipyard started.

The pipelines plane writes them on every run of a pipeline it applies locally (through
``MLFLOW_RUN_CONTEXT``, so every run the pipeline's tasks start carries them); the models
plane promotes only versions whose run carries all of them. A version registered by hand,
by a notebook or by another local process has none, and is shown and refused, never served.

Tags are a fence against mistakes and against code that cannot see a real run's tags; they
are not a signature. README "Threat model" says what they do not stop.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The change the run applies (its key), and a digest of that change.
CHANGE = "shipyard.change"
CHANGE_DIGEST = "shipyard.change.digest"
#: The plan the change was applied from, the commit it was made at, and the digest of the compiled pipeline.
PLAN = "shipyard.plan"
COMMIT = "shipyard.commit"
PIPELINE_DIGEST = "shipyard.pipeline.digest"

REQUIRED = (CHANGE, CHANGE_DIGEST, PLAN, PIPELINE_DIGEST, COMMIT)


def missing(run_tags: Mapping[str, str]) -> list[str]:
    """The provenance tags ``run_tags`` lacks (empty: a Shipyard pipeline run made it)."""
    return [tag for tag in REQUIRED if not run_tags.get(tag)]


def provenance(run_tags: Mapping[str, str]) -> dict[str, str]:
    """Just the provenance tags of a run's tags."""
    return {tag: run_tags[tag] for tag in REQUIRED if run_tags.get(tag)}
