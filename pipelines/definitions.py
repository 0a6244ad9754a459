"""Build a pipeline definition (the JSON `upsert` sends): training, deploy, or the drift monitor."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from pipelines.backend import Backend
from pipelines.config import Config
from pipelines.sdk import pipeline_session, prepare_sdk_environment

if TYPE_CHECKING:
    from sagemaker.workflow.pipeline import Pipeline

PipelineKind = Literal["training", "deploy", "monitor"]


def build_pipeline(kind: PipelineKind, config: Config, backend: Backend) -> "Pipeline":
    """The SDK Pipeline object; building it uploads step code to the backend's S3."""
    prepare_sdk_environment()
    session = pipeline_session(backend.session, config.project.bucket)
    if kind == "training":
        from pipelines.training.pipeline import training_pipeline

        if config.training.backend == "bedrock" and backend.is_local:
            raise ValueError("training.backend: bedrock needs AWS: Bedrock model customization and bedrock-runtime "
                             "have no local stand-in (and a local run makes no network calls); run it with --aws, "
                             "or set training.backend: sagemaker to train here")

        return training_pipeline(config, session)
    if kind == "deploy":
        from pipelines.deploy.pipeline import deploy_pipeline

        return deploy_pipeline(config, session)
    if kind == "monitor":
        from pipelines.deploy.monitor_pipeline import monitor_pipeline

        return monitor_pipeline(config, session)
    raise ValueError(f"unknown pipeline {kind!r}: expected 'training', 'deploy' or 'monitor'")


def definition_json(kind: PipelineKind, config: Config, backend: Backend) -> dict:
    return json.loads(build_pipeline(kind, config, backend).definition())
