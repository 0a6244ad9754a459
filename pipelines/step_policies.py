"""Caching and retry policies of the project's pipeline steps, decided here once (config: `step_policies`).

- Caching (https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-caching.html): training and evaluation reuse
  an earlier successful run whose cache-key attributes (evaluated inputs, code, image, environment,
  hyperparameters) are the same, for `step_policies.cache_expire_after`. A changed input misses.
- Retries (https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html): every job step retries
  throttling and service faults of the calls that start it and a job refused for capacity or a resource limit
  (the job never ran); steps whose job may be re-run from the start also retry SageMaker's internal job errors.
"""
from __future__ import annotations

from sagemaker.workflow.retry import (
    RetryPolicy, SageMakerJobExceptionTypeEnum, SageMakerJobStepRetryPolicy, StepExceptionTypeEnum, StepRetryPolicy)
from sagemaker.workflow.steps import CacheConfig

from pipelines.config import Config


def cached_on_inputs(config: Config) -> CacheConfig:
    """The CacheConfig of a step that may reuse an earlier run with the same inputs (training, evaluation)."""
    expire_after = config.step_policies.cache_expire_after
    return CacheConfig(enable_caching=expire_after is not None, expire_after=expire_after)


def job_retries(config: Config, rerunnable: bool = True) -> list[RetryPolicy]:
    """Retry policies of a job step; `rerunnable`: the job may run again from its start after an internal error
    (training, evaluation, data preparation), which a deploy step that changed an endpoint may not."""
    settings = config.step_policies
    timing = {"max_attempts": settings.retry_max_attempts, "interval_seconds": settings.retry_interval_seconds,
              "backoff_rate": settings.retry_backoff_rate}
    job_errors = [SageMakerJobExceptionTypeEnum.CAPACITY_ERROR, SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT]
    if rerunnable:
        job_errors.append(SageMakerJobExceptionTypeEnum.INTERNAL_ERROR)
    return [StepRetryPolicy(exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
                            **timing),
            SageMakerJobStepRetryPolicy(exception_types=job_errors, **timing)]


def cached_job(config: Config) -> dict:
    """A cached, retried job step's keyword arguments (TrainingStep / ProcessingStep)."""
    return {"cache_config": cached_on_inputs(config), "retry_policies": job_retries(config)}


def retried_job(config: Config, rerunnable: bool = True) -> dict:
    """A retried job step's keyword arguments (see job_retries)."""
    return {"retry_policies": job_retries(config, rerunnable)}
