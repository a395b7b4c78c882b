"""The Pulumi CrossGuard pack: Shipyard's infra rules, run inside ``pulumi preview --policy-pack policies``.

The Pulumi CLI runs this file in the pack's own virtual environment (``requirements.txt`` here),
so pulumi-policy's protobuf pin never meets the platform's. Nothing else imports it: building a
``PolicyPack`` starts a gRPC server and waits for the engine.
"""

from datetime import UTC, datetime
from pathlib import Path

from pulumi_policy import PolicyPack

from shipyard.engine.policies import rules_in_force
from shipyard.engine.registry import discover
from shipyard.planes.infra.crossguard import pack_policies

ROOT = Path(__file__).resolve().parents[1]

PolicyPack(
    name="shipyard",
    policies=pack_policies(rules_in_force(discover(), ROOT).policies, ROOT, datetime.now(UTC).date()),
)
