"""Step caching (`CacheConfig`) as SageMaker Pipelines does it, with the cache in the local home.

https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-caching.html: with `{"Enabled": true, "ExpireAfter":
"<ISO 8601 duration>"}` a step looks for an earlier *successful* run of the same step of the same pipeline whose
cache-key attributes were the same, within the expiry; the most recent one found is reused (its outputs, not a new
job). The attributes per step type are listed in
https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-default-keys.html (evaluated values: a changed input URI,
script, image, environment or hyperparameter runs the step again).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

CACHEABLE_STEP_TYPES = frozenset({"Processing", "Training", "Tuning", "Transform", "AutoML", "QualityCheck",
                                  "ClarifyCheck", "EMR"})
KEY_ATTRIBUTES = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": ("AlgorithmSpecification", "CheckpointConfig", "DebugHookConfig", "DebugRuleConfigurations",
                 "Environment", "HyperParameters", "InputDataConfig"),
}
# "30d", "5y", "T16m", "30dT5h", "P30D", "PT1H": years, months, weeks, days; then hours, minutes (and seconds).
_DURATION = re.compile(r"P?(?:(\d+)[Yy])?(?:(\d+)M)?(?:(\d+)[Ww])?(?:(\d+)[Dd])?"
                       r"(?:T(?:(\d+)[Hh])?(?:(\d+)[Mm])?(?:(\d+)[Ss])?)?")


@dataclass(frozen=True)
class CacheHit:
    source_execution_arn: str
    properties: dict[str, Any]
    metadata: dict[str, Any]


def parse_duration(text: str) -> timedelta:
    """An ExpireAfter value as a duration (a month counts 30 days, a year 365); ValueError when malformed."""
    match = _DURATION.fullmatch(text or "")
    if not match or not any(match.groups()) or text.endswith("T"):
        raise ValueError(f"ExpireAfter {text!r} is not an ISO 8601 duration such as 'P30D', '30d', 'T16m', 'PT1H'")
    years, months, weeks, days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return timedelta(days=years * 365 + months * 30 + weeks * 7 + days, hours=hours, minutes=minutes, seconds=seconds)


def cache_config_problems(config: Any, step_type: str, where: str) -> list[str]:
    """What CreatePipeline would refuse in a step's CacheConfig (empty when valid)."""
    if not isinstance(config, dict):
        return [f"{where}: CacheConfig must be an object"]
    problems = [f"{where}: unknown field {key!r}" for key in sorted(set(config) - {"Enabled", "ExpireAfter"})]
    if step_type not in CACHEABLE_STEP_TYPES:
        problems.append(f"{where}: a {step_type} step cannot be cached (only {', '.join(sorted(CACHEABLE_STEP_TYPES))})")
    if not isinstance(config.get("Enabled"), bool):
        problems.append(f"{where}.Enabled: true or false is required, got {config.get('Enabled')!r}")
    if "ExpireAfter" in config:
        try:
            parse_duration(str(config["ExpireAfter"]) if isinstance(config["ExpireAfter"], str) else "")
        except ValueError as exc:
            problems.append(f"{where}.ExpireAfter: {exc}")
    return problems


def cache_key(pipeline_name: str, step_name: str, step_type: str, arguments: dict[str, Any]) -> str:
    """The step's cache key: its pipeline, name, type and its type's key attributes, evaluated."""
    attributes = {name: arguments.get(name) for name in KEY_ATTRIBUTES.get(step_type, tuple(sorted(arguments)))}
    text = json.dumps([pipeline_name, step_name, step_type, attributes], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class StepCache:
    """Successful step runs by cache key under `<home>/cache/`, newest last."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def lookup(self, key: str, expire_after: str | None, now: datetime | None = None) -> CacheHit | None:
        path = self.root / f"{key}.json"
        if not path.is_file():
            return None
        entries = json.loads(path.read_text(encoding="utf-8"))
        now = now or datetime.now(timezone.utc)
        for entry in reversed(entries):
            age = now - datetime.fromisoformat(entry["created"])
            if expire_after is None or age <= parse_duration(expire_after):
                return CacheHit(entry["execution_arn"], entry["properties"], entry["metadata"])
        return None

    def store(self, key: str, execution_arn: str, properties: dict[str, Any], metadata: dict[str, Any],
              now: datetime | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{key}.json"
        entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
        entries.append({"created": (now or datetime.now(timezone.utc)).isoformat(), "execution_arn": execution_arn,
                        "properties": properties, "metadata": metadata})
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(entries[-20:], default=str), encoding="utf-8")
        temporary.replace(path)
