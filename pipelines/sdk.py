"""The SageMaker SDK v2 behind one door: the right major version, quiet, telemetry off, a PipelineSession.

Every `sagemaker` import of the project lives under `pipelines/`; this module sets the process up
before the SDK is first imported (version check, log level, deprecation warning, telemetry opt-out).
Why v2 and not v3 yet, with the evidence and when to look again: docs/sdk.md.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

_TELEMETRY_OPT_OUT = "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
_validated_configs: set[str] = set()
SDK_MAJOR = 2  # docs/sdk.md: v3 builds non-deterministic definitions (timestamped code paths)
SDK_REQUIREMENT = "sagemaker>=2.257.7,<3"


class SdkVersionError(RuntimeError):
    """The installed SageMaker SDK is not the major version the definitions are built with."""


def require_sdk_major(installed: str | None = None) -> None:
    """Refuse a SageMaker SDK of another major version (v3 has no `sagemaker.workflow`), saying how to fix it."""
    if installed is None:
        try:
            installed = metadata.version("sagemaker")
        except metadata.PackageNotFoundError:
            raise SdkVersionError(f"the SageMaker Python SDK is not installed: pip install '{SDK_REQUIREMENT}'") from None
    if installed.split(".")[0] != str(SDK_MAJOR):
        raise SdkVersionError(f"sagemaker {installed} is installed; continuum builds its pipelines with SDK v{SDK_MAJOR} "
                              f"(docs/sdk.md): pip install -c constraints.txt '{SDK_REQUIREMENT}'")


def prepare_sdk_environment() -> None:
    """Check the SDK's major version; silence its stdout chatter and telemetry before it is imported."""
    require_sdk_major()
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
