"""A step's `RetryPolicies`, as SageMaker Pipelines reads and applies them.

https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html: each policy names the exception
types it covers (`Step.SERVICE_FAULT`, `Step.THROTTLING`, `SageMaker.JOB_INTERNAL_ERROR`, `SageMaker.CAPACITY_ERROR`,
`SageMaker.RESOURCE_LIMIT`), waits `IntervalSeconds` (default 1, at most 43200) before the first retry, multiplies
the wait by `BackoffRate` (default 2.0) each time, and stops after `MaxAttempts` retries (1..20) or once
`ExpireAfterMin` minutes (1..14400) have passed — one of the two, never both. Only the job-like step types take
policies; the `SageMaker.*` types only where a SageMaker job runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

STEP_EXCEPTIONS = ("Step.SERVICE_FAULT", "Step.THROTTLING")
JOB_EXCEPTIONS = ("SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT")
RETRYABLE_STEP_TYPES = frozenset({"Processing", "Training", "Tuning", "AutoML", "Model", "RegisterModel", "Transform"})
JOB_STEP_TYPES = frozenset({"Processing", "Training", "Tuning", "AutoML", "Transform"})
MAX_INTERVAL_SECONDS = 43200
MAX_ATTEMPTS = 20
MAX_EXPIRE_AFTER_MIN = 14400
_FIELDS = {"ExceptionType", "IntervalSeconds", "BackoffRate", "MaxAttempts", "ExpireAfterMin"}

# How a failure reads, on SageMaker and locally (a job's failure reason, an API error code) → its exception type.
_REASON_PREFIXES = {
    "InternalServerError": "SageMaker.JOB_INTERNAL_ERROR",
    "CapacityError": "SageMaker.CAPACITY_ERROR",
    "InsufficientCapacityError": "SageMaker.CAPACITY_ERROR",
    "ResourceLimitExceeded": "SageMaker.RESOURCE_LIMIT",
}
_ERROR_CODES = {
    "ThrottlingException": "Step.THROTTLING", "Throttling": "Step.THROTTLING", "TooManyRequestsException": "Step.THROTTLING",
    "InternalFailure": "Step.SERVICE_FAULT", "ServiceUnavailable": "Step.SERVICE_FAULT", "InternalServerError":
    "Step.SERVICE_FAULT", "ResourceLimitExceeded": "SageMaker.RESOURCE_LIMIT",
}


@dataclass(frozen=True)
class RetryPolicy:
    exception_types: tuple[str, ...]
    interval_seconds: float = 1.0
    backoff_rate: float = 2.0
    max_attempts: int | None = None
    expire_after_min: int | None = None

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 = the first retry)."""
        return self.interval_seconds * self.backoff_rate ** (retry - 1)

    def allows(self, retry: int, elapsed_seconds: float) -> bool:
        """Whether retry number `retry` may start, `elapsed_seconds` after the step's first attempt began."""
        if self.max_attempts is not None:
            return retry <= self.max_attempts
        assert self.expire_after_min is not None
        return elapsed_seconds + self.delay(retry) <= self.expire_after_min * 60


def policy_problems(policies: Any, step_type: str, where: str) -> list[str]:
    """What CreatePipeline would refuse in a step's RetryPolicies (empty when valid)."""
    if not isinstance(policies, list):
        return [f"{where}: RetryPolicies must be a list, got {type(policies).__name__}"]
    problems: list[str] = []
    if policies and step_type not in RETRYABLE_STEP_TYPES:
        problems.append(f"{where}: a {step_type} step takes no RetryPolicies "
                        f"(only {', '.join(sorted(RETRYABLE_STEP_TYPES))})")
    allowed = STEP_EXCEPTIONS + (JOB_EXCEPTIONS if step_type in JOB_STEP_TYPES else ())
    for index, policy in enumerate(policies):
        here = f"{where}[{index}]"
        if not isinstance(policy, dict):
            problems.append(f"{here}: a retry policy must be an object")
            continue
        problems += [f"{here}: unknown field {key!r}" for key in sorted(set(policy) - _FIELDS)]
        types = policy.get("ExceptionType")
        if not isinstance(types, list) or not types:
            problems.append(f"{here}.ExceptionType: a non-empty list of exception types is required")
        else:
            problems += [f"{here}.ExceptionType: {kind!r} is not one of {list(allowed)}"
                         for kind in types if kind not in allowed]
        problems += _number(policy, "IntervalSeconds", here, 0, MAX_INTERVAL_SECONDS, integer=False)
        problems += _number(policy, "BackoffRate", here, 0, math.inf, integer=False)
        problems += _number(policy, "MaxAttempts", here, 1, MAX_ATTEMPTS, integer=True)
        problems += _number(policy, "ExpireAfterMin", here, 1, MAX_EXPIRE_AFTER_MIN, integer=True)
        if ("MaxAttempts" in policy) == ("ExpireAfterMin" in policy):
            problems.append(f"{here}: exactly one of MaxAttempts and ExpireAfterMin is required")
    return problems


def _number(policy: dict, key: str, where: str, low: float, high: float, integer: bool) -> list[str]:
    if key not in policy:
        return []
    value = policy[key]
    valid_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not valid_type or (isinstance(value, float) and not math.isfinite(value)):
        return [f"{where}.{key}: {value!r} is not {'an integer' if integer else 'a number'}"]
    if not low <= value <= high:
        return [f"{where}.{key}: {value!r} is outside {low}..{high}"]
    return []


def parse_policies(policies: list[dict[str, Any]]) -> list[RetryPolicy]:
    """Validated RetryPolicies (see policy_problems) as objects."""
    return [RetryPolicy(tuple(item["ExceptionType"]), float(item.get("IntervalSeconds", 1)),
                        float(item.get("BackoffRate", 2.0)), item.get("MaxAttempts"), item.get("ExpireAfterMin"))
            for item in policies]


def exception_type(error: BaseException) -> str | None:
    """The retry exception type a step's failure counts as, or None when no policy may retry it (a script's own
    error: SageMaker reports it as an algorithm/client error and never retries it)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return _ERROR_CODES.get(code) or ("Step.SERVICE_FAULT" if isinstance(status, int) and status >= 500 else None)
    reason = str(getattr(error, "failure_reason", "") or "")
    for prefix, kind in _REASON_PREFIXES.items():
        if reason.startswith(prefix):
            return kind
    return None


def policy_for(policies: list[RetryPolicy], kind: str | None) -> RetryPolicy | None:
    """The first policy covering `kind`."""
    return next((policy for policy in policies if kind is not None and kind in policy.exception_types), None)
