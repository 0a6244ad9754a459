"""The SageMaker SDK v2 behind one door: quiet, telemetry off, a PipelineSession for either runtime.

Every `sagemaker` import of the project lives under `pipelines/`; this module sets the process up
before the SDK is first imported (log level, deprecation warning, telemetry opt-out).
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

_TELEMETRY_OPT_OUT = "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
_validated_configs: set[str] = set()


def prepare_sdk_environment() -> None:
    """Silence the SDK's stdout chatter and telemetry before it is imported."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    if "SAGEMAKER_USER_CONFIG_OVERRIDE" not in os.environ:
        path = Path(tempfile.gettempdir()) / "continuum-sagemaker-config.yaml"
        if not path.exists():
            path.write_text(_TELEMETRY_OPT_OUT, encoding="utf-8")
        os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(path)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    _quiet_loggers()  # before the first `import sagemaker`: it only sets levels that are still unset
    _memoize_config_validation()


def pipeline_session(boto_session: "boto3.Session", bucket: str) -> "PipelineSession":
    """A PipelineSession on `boto_session` (AWS, or the local stand-in's) with a fixed default bucket."""
    prepare_sdk_environment()
    from sagemaker.workflow.pipeline_context import PipelineSession

    _quiet_loggers()
    return PipelineSession(boto_session=boto_session, default_bucket=bucket)


def _quiet_loggers() -> None:
    for name in ("sagemaker", "sagemaker.config", "sagemaker.workflow", "sagemaker.image_uris", "sagemaker.processing",
                 "sagemaker.workflow.utilities"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _memoize_config_validation() -> None:
    """Validate each distinct SDK config once.

    With any SDK config present (ours holds the telemetry opt-out), v2 re-validates it against its
    JSON schema on every lookup: ~140 times and ~28 s per pipeline build. The result for the same
    config cannot change, so the first answer is kept.
    """
    import sagemaker.utils

    original = sagemaker.utils.validate_sagemaker_config
    if getattr(original, "_continuum_memoized", False):
        return

    def validate_once(sagemaker_config: dict | None = None) -> None:
        key = json.dumps(sagemaker_config, sort_keys=True, default=str)
        if key not in _validated_configs:
            original(sagemaker_config)
            _validated_configs.add(key)

    validate_once._continuum_memoized = True  # type: ignore[attr-defined]
    sagemaker.utils.validate_sagemaker_config = validate_once
