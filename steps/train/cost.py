"""A training run's cost estimate: instance type and count (from SageMaker's environment) x wall time x price.

Prices are approximate SageMaker training on-demand list prices in us-east-1 (USD per instance-hour,
checked 2025); other regions, savings plans and managed spot (billed at a discount, see the job's
BillableTimeInSeconds) differ. `--instance_price_per_hour` overrides the table.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ON_DEMAND_USD_PER_HOUR = {
    "ml.m5.large": 0.115, "ml.m5.xlarge": 0.23, "ml.m5.2xlarge": 0.461, "ml.m5.4xlarge": 0.922,
    "ml.c5.xlarge": 0.204, "ml.c5.2xlarge": 0.408, "ml.c5.4xlarge": 0.816,
    "ml.g4dn.xlarge": 0.736, "ml.g4dn.2xlarge": 0.94, "ml.g4dn.4xlarge": 1.505, "ml.g4dn.12xlarge": 4.89,
    "ml.g5.xlarge": 1.408, "ml.g5.2xlarge": 1.515, "ml.g5.4xlarge": 2.03, "ml.g5.8xlarge": 3.06,
    "ml.g5.12xlarge": 7.09, "ml.g5.16xlarge": 4.096, "ml.g5.24xlarge": 10.18, "ml.g5.48xlarge": 20.36,
    "ml.p3.2xlarge": 3.825, "ml.p3.8xlarge": 14.688, "ml.p3.16xlarge": 28.152,
    "ml.p4d.24xlarge": 37.688, "ml.p5.48xlarge": 113.07,
}  # fmt: skip
LOCAL_INSTANCE = "local"
RESOURCE_CONFIG = Path("/opt/ml/input/config/resourceconfig.json")


def current_instance() -> tuple[str, int]:
    """(instance type, instance count) of this job: SM_CURRENT_INSTANCE_TYPE / SM_HOSTS, else resourceconfig.json,
    else ("local", 1) for a run outside SageMaker."""
    hosts = json.loads(os.environ.get("SM_HOSTS", "[]") or "[]")
    instance_type = os.environ.get("SM_CURRENT_INSTANCE_TYPE", "")
    if not instance_type and RESOURCE_CONFIG.is_file():
        config = json.loads(RESOURCE_CONFIG.read_text(encoding="utf-8"))
        instance_type = config.get("current_instance_type", "")
        hosts = hosts or config.get("hosts", [])
    return instance_type or LOCAL_INSTANCE, max(len(hosts), 1)


def cost_estimate(instance_type: str, instance_count: int, seconds: float, price_override: float = -1.0) -> dict[str, Any]:
    """{"instance_type", "instance_count", "seconds", "usd_per_instance_hour", "usd", "basis"}; usd None when no price is known."""
    if price_override >= 0:
        price: float | None = price_override
        basis = "--instance_price_per_hour"
    elif instance_type == LOCAL_INSTANCE:
        price, basis = 0.0, "local run (no AWS charge)"
    else:
        price = ON_DEMAND_USD_PER_HOUR.get(instance_type)
        basis = ("on-demand list price, us-east-1 (approximate); managed spot bills less" if price is not None
                 else f"no price known for {instance_type}; pass --instance_price_per_hour")
    usd = None if price is None else round(price * instance_count * seconds / 3600.0, 6)
    return {"instance_type": instance_type, "instance_count": instance_count, "seconds": round(seconds, 3),
            "usd_per_instance_hour": price, "usd": usd, "basis": basis}
