"""A stack's configuration (``Pulumi.<stack>.yaml``, key ``shipyard:platform``), typed and checked.

Pure: no Pulumi import. The Pulumi program (``infra/``) reads its config through
``StackConfig``; the infra plane checks the same file before running anything, so a bad node
pool stops the plan with ``Pulumi.<stack>.yaml:line:col`` and the key, not a stack trace.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from shipyard.core.specs import model_diagnostics
from shipyard.core.yamlsource import YamlDocument, read_yaml
from shipyard.planes.infra.prices import PRICES, gpus_of
from shipyard.sdk import Diagnostic, SourcePosition, Spec, SpecError, SpecModel
from shipyard.sdk.files import linked

CONFIG_KEY = "shipyard:platform"
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,38}$")]


class Network(SpecModel):
    cidr: str = Field(description="The VPC's IPv4 block, e.g. 10.20.0.0/16 (a /16 to a /20)")
    azs: list[str] = Field(min_length=3, description="Availability zones: public and private subnets in each")
    nat: Literal["perAz", "shared"] = Field(
        default="perAz", description="One NAT gateway per AZ (survives an AZ outage) or one shared (cheaper)"
    )

    @field_validator("cidr")
    @classmethod
    def _block(cls, value: str) -> str:
        network = ipaddress.ip_network(value)  # ValueError names the problem
        if not 16 <= network.prefixlen <= 20:
            raise ValueError(f"a /16 to /20 block leaves room for subnets in 3+ AZs, not /{network.prefixlen}")
        return value


class Cluster(SpecModel):
    kubernetes_version: str = Field(pattern=r"^1\.[0-9]{2}$", description="EKS Kubernetes version, e.g. '1.33'")
    public_access_cidrs: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed to reach a public API endpoint; empty keeps the endpoint private only",
    )

    @field_validator("public_access_cidrs")
    @classmethod
    def _narrow(cls, value: list[str]) -> list[str]:
        for cidr in value:
            if ipaddress.ip_network(cidr).prefixlen == 0:
                raise ValueError(f"{cidr} opens the API endpoint to the internet; list your office or VPN ranges")
        return value


class NodePool(SpecModel):
    name: Name = Field(description="Stable pool name: the node group, its label shipyard.dev/pool, its taint")
    instance_types: list[str] = Field(min_length=1, description="EC2 instance types (in the price table)")
    capacity: Literal["ON_DEMAND", "SPOT"] = Field(default="ON_DEMAND", description="EC2 capacity type")
    min: int = Field(ge=0, le=1000, description="Fewest nodes")
    max: int | None = Field(default=None, ge=1, le=1000, description="Most nodes (required for GPU pools)")
    desired: int | None = Field(default=None, ge=0, le=1000, description="Nodes at creation (default: min)")
    ami: Literal["AL2023_x86_64_STANDARD", "AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA"] = Field(
        default="AL2023_x86_64_STANDARD", description="EKS AMI type; GPU pools need an NVIDIA one"
    )
    disk_gib: int = Field(default=100, ge=20, le=16384, description="Root volume size (encrypted gp3)")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra Kubernetes node labels")
    efa: bool = Field(default=False, description="Elastic Fabric Adapter interfaces (p4d/p5 multi-node training)")
    capacity_reservation_id: str | None = Field(
        default=None, pattern=r"^cr-[0-9a-f]{8,17}$", description="An ODCR or Capacity Block to launch into"
    )

    @property
    def gpus_per_node(self) -> int:
        return max(gpus_of(t) for t in self.instance_types)

    @property
    def is_gpu(self) -> bool:
        return self.gpus_per_node > 0


class Bucket(SpecModel):
    purpose: Literal["datasets", "mlflow", "feast", "models", "state"] = Field(
        description="What the bucket holds; `state`: apply locks, journals and last-applied records (spec.state)"
    )
    noncurrent_days: int = Field(default=30, ge=1, description="Old object versions are deleted after this many days")
    archive_days: int | None = Field(
        default=None, ge=30, description="Objects move to Glacier Instant Retrieval after this many days"
    )


class Addons(SpecModel):
    """Helm chart versions installed on the cluster."""

    nvidia_device_plugin: str = "0.17.1"
    cert_manager: str = "v1.17.2"
    kserve: str = "v0.15.2"
    kubeflow_pipelines: str = "2.5.0"
    mlflow: str = "1.7.1"
    feast_feature_server: str = "0.51.0"


class StackConfig(SpecModel):
    """Everything one stack (dev, staging, prod) decides."""

    environment: Literal["dev", "staging", "prod"] = Field(description="Tag env on every resource")
    cost_center: str = Field(pattern=r"^[A-Z]{2}-[0-9]{3,6}$", description="Tag cost-center, e.g. CC-1000")
    repository: str = Field(
        pattern=r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$", description="owner/name: the only repo CI may deploy from"
    )
    network: Network
    cluster: Cluster
    node_pools: list[NodePool] = Field(min_length=1, description="A CPU system pool and any GPU pools")
    gpu_ceiling: int = Field(ge=0, le=4096, description="Most GPUs all pools may reach together at max size")
    buckets: list[Bucket] = Field(min_length=1)
    efs: bool = Field(default=False, description="An encrypted EFS file system for shared training data")
    fsx_lustre_gib: int | None = Field(
        default=None, ge=1200, description="An FSx for Lustre scratch file system (1200 GiB or a multiple of 2400)"
    )

    @field_validator("fsx_lustre_gib")
    @classmethod
    def _lustre_size(cls, value: int | None) -> int | None:
        if value is not None and value != 1200 and value % 2400:
            raise ValueError(f"FSx for Lustre (SCRATCH_2) comes in 1200 GiB or multiples of 2400 GiB, not {value}")
        return value

    addons: Addons = Field(default_factory=Addons)

    @property
    def gpu_pools(self) -> list[NodePool]:
        return [p for p in self.node_pools if p.is_gpu]


def stack_file(root: Path, stack: str) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def stacks(root: Path) -> list[str]:
    """The stacks with a ``Pulumi.<stack>.yaml`` at the repo root."""
    return sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml") if p.name.count(".") == 2)


def load_stack(root: Path, stack: str) -> StackConfig:
    """The stack's checked config; SpecError with every problem at its line otherwise."""
    path = stack_file(root, stack)
    link = linked(root, path)
    if link is not None:
        raise SpecError([link])
    documents, problems = read_yaml(path, path.name)
    if problems:
        raise SpecError(problems)
    doc = documents[0] if documents else None
    config = doc.data.get("config") if doc is not None and isinstance(doc.data, dict) else None
    if doc is None or not isinstance(config, dict) or CONFIG_KEY not in config:
        raise SpecError([_missing(path.name, doc)])
    value, found = model_diagnostics(doc, ("config", CONFIG_KEY), StackConfig)
    if value is None:
        raise SpecError(found)
    found = _consistency(doc, value)
    if found:
        raise SpecError(found)
    return value


def _missing(file: str, doc: YamlDocument | None) -> Diagnostic:
    return Diagnostic.mismatch(
        "infra/missing-config",
        got="no config",
        expected=f"config: {{{CONFIG_KEY}: ...}}",
        position=doc.start if doc is not None else SourcePosition(file),
        hint="copy Pulumi.dev.yaml and adjust it",
    )


def _consistency(doc: YamlDocument, config: StackConfig) -> list[Diagnostic]:
    """What one field alone cannot say: node pool bounds, known instance types, the GPU ceiling."""
    found = []

    def problem(path: tuple[Any, ...], got: str, expected: str, hint: str) -> None:
        full = ("config", CONFIG_KEY, *path)
        position = doc.position(full)
        found.append(
            Diagnostic.mismatch(
                "infra/node-pool",
                got=got,
                expected=expected,
                hint=hint,
                position=position,
                key_path=".".join(str(p) for p in path),
                snippet=doc.snippet(position),
            )
        )

    names = [p.name for p in config.node_pools]
    for index, pool in enumerate(config.node_pools):
        at = ("nodePools", index)
        if names.count(pool.name) > 1:
            problem((*at, "name"), f"'{pool.name}' twice", "unique pool names", "rename one of them")
        for i, instance in enumerate(pool.instance_types):
            if instance not in PRICES:
                problem(
                    (*at, "instanceTypes", i),
                    f"'{instance}'",
                    "an instance type in the price table",
                    "add it with its prices to platform/shipyard/planes/infra/prices.json, or pick a listed one",
                )
        if pool.is_gpu and pool.max is None:
            problem(at, "a GPU pool without max", "max: N", "every GPU pool needs a ceiling: add max")
        if pool.max is not None and pool.min > pool.max:
            problem((*at, "min"), f"min {pool.min} > max {pool.max}", "min <= max", "lower min or raise max")
        desired = pool.desired if pool.desired is not None else pool.min
        if pool.max is not None and pool.min <= pool.max and not pool.min <= desired <= pool.max:
            problem((*at, "desired"), f"desired {desired}", f"between min {pool.min} and max {pool.max}", "")
        if pool.is_gpu and "NVIDIA" not in pool.ami:
            problem((*at, "ami"), f"'{pool.ami}'", "an NVIDIA AMI for GPU instances", "AL2023_x86_64_NVIDIA")
        if pool.efa and pool.capacity == "SPOT":
            problem((*at, "efa"), "EFA on SPOT", "ON_DEMAND for EFA", "multi-node jobs cannot lose nodes mid-run")
    total = sum(p.gpus_per_node * (p.max or 0) for p in config.gpu_pools)
    if total > config.gpu_ceiling:
        problem(
            ("gpuCeiling",),
            f"GPU pools reaching {total} GPUs at max size",
            f"at most {config.gpu_ceiling}",
            "lower a pool's max, or raise gpuCeiling in review with whoever owns the budget",
        )
    if not any(not p.is_gpu for p in config.node_pools):
        problem(("nodePools",), "only GPU pools", "a CPU system pool too", "add a pool for CoreDNS and add-ons")
    return found


def teams(root: Path) -> list[Spec]:
    """The repo's Team specs (``platform/teams/``): the program creates each team's tenancy from them."""
    from shipyard.core.repo import load_specs
    from shipyard.sdk.platform import TEAM

    return list(load_specs(root, {TEAM.name: TEAM}).of_kind(TEAM.name))


def config_sources(root: Path, stack: str) -> dict[str, SourcePosition]:
    """Where in ``Pulumi.<stack>.yaml`` the settings behind each resource name prefix are written.

    The program names resources after what configures them: ``storage-<purpose>`` after a
    ``buckets`` entry, ``node-pools-<name>`` after a ``nodePools`` entry, ``network-*`` and
    ``cluster-*`` after those keys, the CI roles after ``repository``. A finding on a resource
    points there (``source_of``); one with no such entry points at the stack's config key.
    Read after ``load_stack`` checked the file, so it parses.
    """
    path = stack_file(root, stack)
    documents, _ = read_yaml(path, path.name)
    doc = documents[0]
    base: tuple[str | int, ...] = ("config", CONFIG_KEY)
    config = doc.data["config"][CONFIG_KEY]
    found = {"": doc.position(base, at_key=True)}
    for key, prefix in (("network", "network"), ("cluster", "cluster"), ("repository", "iam-ci-deploy")):
        if key in config:
            found[prefix] = doc.position((*base, key), at_key=True)
    found["iam-github"] = found["iam-ci-read"] = found.get("iam-ci-deploy", found[""])
    for index, bucket in enumerate(config.get("buckets") or ()):
        if isinstance(bucket, dict) and "purpose" in bucket:
            found[f"storage-{bucket['purpose']}"] = doc.position((*base, "buckets", index))
    for index, pool in enumerate(config.get("nodePools") or ()):
        if isinstance(pool, dict) and "name" in pool:
            found[f"node-pools-{pool['name']}"] = doc.position((*base, "nodePools", index, "name"))
    return found


def source_of(sources: dict[str, SourcePosition], name: str) -> SourcePosition:
    """The position of the longest prefix of ``name`` that ``sources`` knows (``a`` matches ``a`` and ``a-*``)."""
    matches = [p for p in sources if p and (name == p or name.startswith(f"{p}-"))]
    return sources[max(matches, key=len)] if matches else sources[""]
