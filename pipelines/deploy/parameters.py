"""Pipeline parameters of the deploy pipeline."""
from __future__ import annotations

from dataclasses import dataclass, fields

from sagemaker.workflow.parameters import Parameter, ParameterInteger, ParameterString

from pipelines.config import Config


@dataclass(frozen=True)
class DeployParameters:
    endpoint_name: ParameterString
    instance_type: ParameterString
    instance_count: ParameterInteger
    capture_percent: ParameterInteger
    capture_s3_uri: ParameterString

    def as_list(self) -> list[Parameter]:
        return [getattr(self, field.name) for field in fields(self)]


def deploy_parameters(config: Config) -> DeployParameters:
    deploy = config.deploy
    return DeployParameters(
        endpoint_name=ParameterString("EndpointName", default_value=deploy.endpoint_name),
        instance_type=ParameterString("EndpointInstanceType", default_value=deploy.instance_type),
        instance_count=ParameterInteger("EndpointInstanceCount", default_value=deploy.instance_count),
        capture_percent=ParameterInteger("DataCapturePercent", default_value=deploy.capture_percent),
        capture_s3_uri=ParameterString("DataCaptureS3Uri", default_value=f"{config.s3_prefix}/data-capture"),
    )
