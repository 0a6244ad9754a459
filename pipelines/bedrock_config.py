"""`training.bedrock`: Amazon Bedrock model customization as the training backend (`training.backend: bedrock`),
and what that backend refuses (it trains on data only: no access to the weights).

Defaults come from steps/bedrock_train/contract.py (the step that reads them).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.step_contracts import config_default, step_contract

BACKENDS = ("sagemaker", "bedrock")
REPLAY = "replay"  # the one strategy that is data only: prepare mixes replayed rows into the train split


def _bedrock(key: str, **constraints: Any) -> Any:
    return Field(default=config_default("bedrock_train:train", key), validate_default=True, **constraints)


class BedrockConfig(BaseModel):
    """bedrock_train.py's settings (steps/bedrock_train/contract.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model_identifier: str | None = Field(
        default=None, description="Bedrock base model id/ARN that Bedrock can fine-tune, e.g. amazon.nova-micro-v1:0:128k")
    role_arn: str | None = Field(default=None, description="service role Bedrock assumes (infra/template.yaml: "
                                 "BedrockCustomizationRole)")
    kms_key_id: str | None = Field(default=None, description="customModelKmsKeyId; None: Bedrock's own key")
    subnet_ids: list[str] = Field(default_factory=list, description="vpcConfig subnets (with security_group_ids)")
    security_group_ids: list[str] = Field(default_factory=list)
    use_validation: bool = _bedrock("training.bedrock.use_validation")
    hyper_parameters: dict[str, str] = Field(default_factory=dict, description="more hyperparameters for the base "
                                             "model (e.g. learningRateWarmupSteps); they win over the mapped ones")
    inference: Literal["on_demand", "provisioned"] = _bedrock("training.bedrock.inference")
    model_units: int = _bedrock("training.bedrock.model_units", ge=1)
    baseline_model_id: str | None = Field(default=None, description="model the candidate is compared with through "
                                          "bedrock-runtime; None: the base model")
    poll_seconds: float = _bedrock("training.bedrock.poll_seconds", gt=0)
    max_wait_seconds: int = _bedrock("training.bedrock.max_wait_seconds", ge=1)


def bedrock_problems(training: Any) -> list[str]:
    """Why a training config cannot run on Bedrock (empty: it can); each names its field."""
    problems = []
    bedrock = training.bedrock
    for name in ("base_model_identifier", "role_arn"):
        if not getattr(bedrock, name):
            problems.append(f"training.bedrock.{name} is required with training.backend: bedrock")
    strategy = step_contract("train").parse_strategy(training.continual.strategy)  # a set of components
    needs_weights = [name for name in strategy.names if name != REPLAY]
    if needs_weights:
        problems.append(f"training.continual.strategy: {', '.join(needs_weights)} need(s) the model's weights, which "
                        "Bedrock customization does not expose; with training.backend: bedrock use 'replay' or 'naive'")
    if "replay" in strategy and training.continual.replay_budget < 1:
        problems.append(f"training.continual.replay_budget: {training.continual.replay_budget:g}; Bedrock trains on "
                        "every replayed row (a budget needs train.py's loop), so set 1 with training.backend: bedrock")
    if training.continual.replay_weight != 1.0:
        problems.append("training.continual.replay_weight: weighting replayed rows needs the training loss; Bedrock "
                        "trains every row alike (leave it at 1)")
    if training.epochs != int(training.epochs):
        problems.append(f"training.epochs: {training.epochs:g}; Bedrock's epochCount is a whole number")
    if bool(bedrock.subnet_ids) != bool(bedrock.security_group_ids):
        problems.append("training.bedrock.subnet_ids and security_group_ids go together (a VPC needs both)")
    return problems

