"""Register a Bedrock custom model in the SageMaker Model Registry (bedrock_train.py register).

A model package needs an InferenceSpecification (a SageMaker container and model data) or a SourceUri. A Bedrock
custom model has no SageMaker container or artifact, so the version is registered with `SourceUri` = the custom
model's ARN, no InferenceSpecification (it cannot be deployed to a SageMaker endpoint: it is served by Bedrock),
its evaluation as ModelMetrics, and its lineage in CustomerMetadataProperties: the Bedrock ARNs (custom model,
job, base model, the model id evaluated) and the same data keys as the SageMaker path (data_version,
train_data_uri, inventory_uri, ...), so the next round's replay and inventory resolve as they do there.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bedrock_train.contract import RECORD_FILE, BedrockTrainError

BACKEND = "bedrock"


def read_record(bedrock_dir: Path) -> dict[str, Any]:
    path = Path(bedrock_dir) / RECORD_FILE
    if not path.is_file():
        raise BedrockTrainError(f"{path}: not found (the train subcommand's output)")
    return json.loads(path.read_text(encoding="utf-8"))


def package_request(settings: Any, record: dict[str, Any]) -> dict[str, Any]:
    """CreateModelPackage's parameters for the custom model in bedrock.json."""
    metadata = {
        "training_backend": BACKEND,
        "bedrock_custom_model_arn": record["custom_model_arn"],
        "bedrock_job_arn": record["job_arn"],
        "bedrock_base_model": record["base_model_identifier"],
        "bedrock_inference_model_id": record["inference_model_id"],
        "bedrock_training_data_uri": record["training_data_uri"],
        "data_version": record.get("data_version") or "unknown",
        "training_data_uri": settings.training_data_uri,
        "train_data_uri": settings.train_data_uri,
        "inventory_uri": settings.inventory_uri,
        "parent_model_package_arn": settings.parent_model_package_arn or "none",
        "evaluation_report_uri": settings.evaluation_report_uri,
    }
    return {
        "ModelPackageGroupName": settings.model_package_group,
        "ModelPackageDescription": settings.description or f"Bedrock fine-tune of {record['base_model_identifier']}",
        "ModelApprovalStatus": settings.approval_status,
        "SourceUri": record["custom_model_arn"],
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                         "S3Uri": settings.evaluation_uri}}},
        "CustomerMetadataProperties": metadata,
    }


def register(settings: Any, sagemaker: Any) -> dict[str, Any]:
    """Create the model package; registered.json's record."""
    if not settings.model_package_group:
        raise BedrockTrainError("--model-package-group is required (model.model_package_group)")
    record = read_record(settings.bedrock_dir)
    arn = sagemaker.create_model_package(**package_request(settings, record))["ModelPackageArn"]
    return {"model_package_arn": arn, "custom_model_arn": record["custom_model_arn"]}
