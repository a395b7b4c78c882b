"""Runs the Pulumi program of one stack under Pulumi's mocks and prints every resource it registers, as JSON.

Run as ``python -m shipyard.planes.infra.evaluate ROOT STACK [--checked]``. No Pulumi CLI, no cloud, no
credentials: the program runs exactly as ``pulumi up`` would run it, but each registration is
answered by a mock (outputs = inputs, ids made up) and recorded with its type, parent,
dependencies and inputs. Mocks are process-global, so each stack gets its own process.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from shipyard.planes.infra.stack import load_stack, stack_file

PROJECT = "shipyard"


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        # The few outputs the program reads before anything exists: what the real provider would return.
        if args.typ == "aws:eks/cluster:Cluster":
            state |= {
                "endpoint": f"https://{args.name}.eks.example",
                "certificateAuthority": {"data": "Q0E="},
                "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.example/id/{args.name}"}]}],
            }
        if args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state["latestVersion"] = 1
        state.setdefault("arn", f"arn:aws:mock:::{args.typ.split(':')[-1].lower()}/{args.name}")
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class _Recorder(mocks.MockMonitor):
    """Keeps each registration as the engine would see it: type, name, parent, dependencies, inputs."""

    def __init__(self, answers: pulumi.runtime.Mocks) -> None:
        super().__init__(answers)
        self.registered: list[dict[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        from google.protobuf import json_format

        answer = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.registered.append(
                {
                    "urn": answer.urn,
                    "type": request.type,
                    "name": request.name,
                    "parent": request.parent,
                    "custom": bool(request.custom),
                    "dependencies": sorted(set(request.dependencies)),
                    "inputs": json_format.MessageToDict(request.object),
                }
            )
        return answer


def evaluate(root: Path, stack: str, *, checked: bool = False) -> list[dict[str, Any]]:
    """Every resource the stack's program registers, in registration order.

    ``checked``: the caller (the infra plane) has read the stack file with positions already, so it
    is not read that way again here: run alone, a bad config stops before the program, at its line.
    """
    if not checked:
        load_stack(root, stack)
    recorder = _Recorder(_Mocks())
    pulumi.runtime.set_mocks(_Mocks(), project=PROJECT, stack=stack, preview=False, monitor=recorder)
    raw = _raw_config(root, stack)
    pulumi.runtime.set_all_config({key: v if isinstance(v, str) else json.dumps(v) for key, v in raw.items()})
    program = root / "infra" / "__main__.py"
    sys.path.insert(0, str(program.parent))  # as the Pulumi runtime does for `main: infra/`

    def run() -> None:
        runpy.run_path(str(program), run_name="__main__")

    _sync_await(run_pulumi_func(run))  # what Pulumi's own @pulumi.runtime.test does
    return recorder.registered


def _raw_config(root: Path, stack: str) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(stack_file(root, stack).read_text(encoding="utf-8"))
    found: dict[str, Any] = data["config"]  # load_stack checked it is there
    return found


def main() -> None:
    root, stack = Path(sys.argv[1]), sys.argv[2]
    try:
        registered = evaluate(root, stack, checked="--checked" in sys.argv[3:])
    except Exception as error:  # reported to the plane as data, not as a traceback on its stderr
        json.dump({"error": f"{type(error).__name__}: {error}"}, sys.stdout)
        return
    json.dump({"resources": registered}, sys.stdout)


if __name__ == "__main__":
    main()
