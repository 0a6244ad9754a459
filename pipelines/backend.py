"""Where the control plane sends its AWS calls: real AWS, or this machine's stand-ins.

Both are a `boto3.Session`; locally its S3 and SageMaker calls are answered in-process by
`pipelines.local.transport`. Everything above this module is the same code for both.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import boto3

from pipelines.config import Config


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

    def stand_in_base_model(self, config: Config) -> Callable[[], Path] | None:
        """What builds the base model when model.base_model is unset: locally the demo's tiny model (built once
        under the home; no hub is reached), nothing on AWS (staging then asks for model.base_model)."""
        if not self.is_local or config.model.base_model is not None:
            return None
        from pipelines.demo.tiny_model import tiny_base_model_builder

        assert self.home is not None
        return tiny_base_model_builder(self.home)


def local_backend(config: Config, home: Path | None = None) -> Backend:
    from pipelines.local.home import continuum_home
    from pipelines.local.transport import local_boto3_session

    root = home or continuum_home()
    return Backend("local", local_boto3_session(root, region=config.project.region), root)


def aws_backend(config: Config, profile: str | None = None) -> Backend:
    return Backend("aws", boto3.Session(region_name=config.project.region, profile_name=profile))
