"""The deployment stages of a config (staging, production) and what each endpoint serves."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from pipelines.config import Config

# steps/deploy.py names models and endpoint configs <endpoint>-v<version>-<yyyymmddHHMMSSmmm>
CONFIG_VERSION = re.compile(r"-v(\d+)-\d{17}$")


@dataclass(frozen=True)
class Stage:
    name: str
    endpoint_name: str
    instance_type: str
    instance_count: int
    capture_percent: int


def stages(config: Config) -> list[Stage]:
    """Staging, then production when the config has an enabled production stage."""
    deploy = config.deploy
    found = [Stage("staging", deploy.endpoint_name, deploy.instance_type, deploy.instance_count, deploy.capture_percent)]
    production = deploy.production
    if production is not None and production.enabled:
        found.append(Stage("production", production.endpoint_name, production.instance_type,
                           production.instance_count, production.capture_percent))
    return found


def select_stages(config: Config, names: list[str] | None) -> list[Stage]:
    available = stages(config)
    if not names:
        return available
    unknown = sorted(set(names) - {s.name for s in available})
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; this config has {[s.name for s in available]}")
    return [s for s in available if s.name in names]


def config_version(endpoint_config_name: str | None) -> int | None:
    """The model version an endpoint config of steps/deploy.py serves (None for other names)."""
    match = CONFIG_VERSION.search(endpoint_config_name or "")
    return int(match.group(1)) if match else None


def describe_endpoint(sagemaker: Any, endpoint_name: str) -> dict[str, Any] | None:
    """describe_endpoint, or None when the endpoint does not exist."""
    try:
        return sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "").lower()
        if "could not find" in message or "not found" in message:
            return None
        raise
