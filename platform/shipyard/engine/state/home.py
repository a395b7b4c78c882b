"""Which store holds a target's state: files for ``local``, the state bucket for an environment."""

from __future__ import annotations

from shipyard.engine.state.store import FileStore, ObjectStore
from shipyard.sdk.errors import UserError
from shipyard.sdk.kinds import SpecSet
from shipyard.sdk.planes import Target
from shipyard.sdk.platform import environment


def open_store(target: Target, specs: SpecSet) -> ObjectStore:
    """The target's state: ``.shipyard/local/`` for local, ``s3://<spec.state.bucket>/<prefix>/`` otherwise.

    A runner's disk is never a cloud environment's state: CI runners are ephemeral and run
    side by side, so a lock or journal there would protect nothing.
    """
    if target.is_local:
        return FileStore(target.state_dir)
    state = environment(specs, target.name).state
    if state is None:
        raise UserError(
            f"environment '{target.name}' names no state bucket, so nothing can hold its lock and journal",
            hint=f"set spec.state.bucket in platform/environments/{target.name}.yaml to the infra stack's "
            "state bucket (pulumi stack output buckets)",
        )
    from shipyard.engine.state.s3 import S3Store

    return S3Store(state.bucket, state.prefix, region=state.region)
