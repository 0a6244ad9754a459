"""Where the control plane sends its AWS calls: real AWS, or this machine's stand-ins.

Both are a `boto3.Session`; locally its S3 and SageMaker calls are answered in-process by
`pipelines.local.transport`. Everything above this module is the same code for both: what differs
between the two (how a pipeline runs, what a step process needs to reach the APIs, where a person
fetches an object, what builds an unset base model) is decided here, by the methods of `Backend`.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import boto3

from pipelines.config import Config

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs live at most 7 days
# home → a builder of the base model that stands in for an unset model.base_model on the local backend (no hub is
# reached); the demo registers its tiny model (pipelines/demo/__init__.py).
BASE_MODEL_STAND_INS: list[Callable[[Path], Callable[[], Path]]] = []


@dataclass(frozen=True)
class RunOutcome:
    pipeline_name: str
    execution_id: str  # local id, or the execution ARN on AWS
    status: str
    failure_reason: str | None = None
    directory: Path | None = None  # the local run folder (None on AWS)
    steps: tuple[dict[str, Any], ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"


def aws_tags(config: Config) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(config.project.tags.items())]


def wait_for_execution(client: Any, arn: str, echo: Callable[[str], None], poll_seconds: float = 30) -> str:
    """Poll a SageMaker execution until it ends, echoing each step's status change."""
    seen: dict[str, str] = {}
    while True:
        status = client.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        for step in client.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]:
            if seen.get(step["StepName"]) != step["StepStatus"]:
                seen[step["StepName"]] = step["StepStatus"]
                echo(f"  {step['StepName']}: {step['StepStatus']}")
        if status in ("Succeeded", "Failed", "Stopped"):
            return status
        time.sleep(poll_seconds)


@dataclass(frozen=True)
class Backend:
    kind: Literal["local", "aws"]
    session: boto3.Session
    home: Path | None = None

    def client(self, service: str) -> Any:
        return self.session.client(service)

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @property
    def local_api(self) -> Any:
        """The local SageMaker API stand-in this session's clients talk to (local backends only)."""
        if not self.is_local:
            raise ValueError("the AWS backend has no local API")
        return self.session.local_transport.api  # type: ignore[attr-defined]

    def execute(self, pipeline: Any, config: Config, parameters: dict[str, Any] | None = None,
                echo: Callable[[str], None] = print, wait: bool = True) -> RunOutcome:
        """Run a built SDK Pipeline: locally its definition JSON on the embedded runtime; on AWS upsert it with
        the project's role and tags, start it and (unless `wait` is False) follow it to its end."""
        if self.is_local:
            return self._execute_locally(pipeline, config, parameters or {}, echo)
        pipeline.upsert(role_arn=config.project.role_arn, tags=aws_tags(config))
        execution = pipeline.start(parameters=parameters or {})
        echo(f"started {pipeline.name}: {execution.arn}")
        status = wait_for_execution(self.client("sagemaker"), execution.arn, echo) if wait else "Executing"
        return RunOutcome(pipeline_name=pipeline.name, execution_id=execution.arn, status=status)

    def _execute_locally(self, pipeline: Any, config: Config, parameters: dict[str, Any],
                         echo: Callable[[str], None]) -> RunOutcome:
        from pipelines.local.api_server import serve_local_api
        from pipelines.local.runtime import LocalPipelineRuntime

        assert self.home is not None
        definition = pipeline.definition()
        with serve_local_api(self.local_api, config.project.region) as env:
            result = LocalPipelineRuntime(self.home, self.client("sagemaker"), env, echo).execute(
                definition, pipeline.name, parameters)
        return RunOutcome(
            pipeline_name=result.pipeline_name,
            execution_id=result.execution_id,
            status=result.status,
            failure_reason=result.failure_reason,
            directory=result.directory,
            steps=tuple({"name": s.name, "type": s.type, "status": s.status, "seconds": s.seconds, **s.metadata}
                        for s in result.steps),
        )

    @contextmanager
    def step_environment(self, config: Config, profile: str | None = None) -> Iterator[dict[str, str]]:
        """The environment of a step script run on this machine that calls the backend's APIs (locally the
        local API is served while the block runs)."""
        if self.is_local:
            from pipelines.local.api_server import serve_local_api

            with serve_local_api(self.local_api, config.project.region, base=os.environ) as env:
                yield env
            return
        yield {**os.environ, "AWS_DEFAULT_REGION": config.project.region, **({"AWS_PROFILE": profile} if profile else {})}

    def local_file(self, uri: str) -> Path | None:
        """The file (or folder, for a prefix) behind an s3:// URI when this backend's S3 is the local folder
        stand-in, to read in place; None on AWS."""
        if not self.is_local:
            return None
        from pipelines.local.s3 import LocalS3

        assert self.home is not None
        return LocalS3(self.home / "s3").path(uri)

    def object_location(self, uri: str, expires_in: int = 3600, content_type: str | None = None) -> str:
        """Where a person fetches the object at ``uri``: its file in the local S3 stand-in (FileNotFoundError when
        missing), or on AWS a presigned ``https://`` GET URL valid ``expires_in`` seconds (``content_type``: the
        Content-Type S3 answers with)."""
        path = self.local_file(uri)
        if path is not None:
            if not path.exists():
                raise FileNotFoundError(f"{uri} is missing ({path})")
            return str(path)
        if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"--expires-in must be within 1..{MAX_PRESIGN_SECONDS} seconds, got {expires_in}")
        from botocore.config import Config as BotoConfig

        bucket, _, key = uri.removeprefix("s3://").partition("/")
        s3 = self.session.client("s3", config=BotoConfig(signature_version="s3v4"))  # SigV2 URLs are deprecated
        params = {"Bucket": bucket, "Key": key, **({"ResponseContentType": content_type} if content_type else {})}
        return s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def traffic_shift(self, endpoint_name: str) -> dict[str, float | None] | None:
        """A blue/green update as this backend sees it: locally ``{"candidate_share": the new fleet's share, or None
        while it warms up}``; None on AWS, where DescribeEndpoint does not report the share."""
        if not self.is_local:
            return None
        candidate = (self.local_api.endpoints.status(endpoint_name) or {}).get("candidate")
        return {"candidate_share": candidate["share"] if candidate else None}

    def recent_executions(self, count: int) -> list[dict[str, Any]]:
        """The last ``count`` local pipeline executions (execution.json records, oldest first); none on AWS."""
        if not self.is_local or self.home is None:
            return []
        paths = sorted((self.home / "executions").glob("*/*/execution.json"), key=lambda p: p.stat().st_mtime)
        from pipelines.local.executions import read_execution  # an execution whose runner died reads as Failed

        return [read_execution(path) for path in paths[-count:]]

    def stand_in_base_model(self, config: Config) -> Callable[[], Path] | None:
        """What builds the base model when model.base_model is unset: locally the registered stand-in (the demo's
        tiny model, built once under the home), nothing on AWS (staging then asks for model.base_model)."""
        if not self.is_local or config.model.base_model is not None or not BASE_MODEL_STAND_INS:
            return None
        assert self.home is not None
        return BASE_MODEL_STAND_INS[-1](self.home)


def local_backend(config: Config, home: Path | None = None) -> Backend:
    from pipelines.local.home import continuum_home
    from pipelines.local.transport import local_boto3_session

    root = home or continuum_home()
    return Backend("local", local_boto3_session(root, region=config.project.region), root)


def aws_backend(config: Config, profile: str | None = None) -> Backend:
    return Backend("aws", boto3.Session(region_name=config.project.region, profile_name=profile))
