"""EC2 prices shipped as data (``prices.json``: its date, region and source inside) and the costs derived from them.

Pure. A node pool's monthly cost is priced at its maximum size: the most a PR can commit
the company to, which is what a reviewer needs to see.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TABLE: dict[str, Any] = json.loads((Path(__file__).with_name("prices.json")).read_text(encoding="utf-8"))
PRICES: dict[str, dict[str, Any]] = TABLE["instances"]
HOURS_PER_MONTH: int = TABLE["hoursPerMonth"]


def gpus_of(instance_type: str) -> int:
    """GPUs per node; 0 for a CPU type or one not in the table (the stack check reports those)."""
    return int(PRICES.get(instance_type, {}).get("gpus", 0))


def accelerator_of(instance_type: str) -> str | None:
    found: str | None = PRICES.get(instance_type, {}).get("accelerator")
    return found


def hourly(instance_type: str, capacity: str) -> float:
    """$/hour of one node: On-Demand, or the table's spot estimate."""
    price = PRICES[instance_type]
    return float(price["spot" if capacity == "SPOT" else "onDemand"])


def monthly_at_max(instance_types: list[str], capacity: str, max_nodes: int) -> float:
    """A pool's monthly cost with every node up, priced at its dearest instance type."""
    return round(max(hourly(t, capacity) for t in instance_types) * max_nodes * HOURS_PER_MONTH, 2)


def gpu_hour_price(instance_types: list[str], capacity: str) -> float:
    """$ per GPU-hour on a pool (its dearest type), to turn a team's GPU quota into money."""
    per_gpu = [hourly(t, capacity) / gpus_of(t) for t in instance_types if gpus_of(t)]
    return max(per_gpu) if per_gpu else 0.0
