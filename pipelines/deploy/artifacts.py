"""A model version's artifact for people: a presigned S3 URL on AWS, the file itself locally."""
from __future__ import annotations

from pipelines.backend import Backend


def artifact_location(backend: Backend, model_data_url: str, expires_in: int = 3600) -> str:
    """``https://…`` (GET, valid ``expires_in`` s) on AWS; the local path of the artifact on the local backend."""
    if not model_data_url.startswith("s3://"):
        raise ValueError(f"the version's ModelDataUrl is not an s3:// URI: {model_data_url!r}")
    return backend.object_location(model_data_url, expires_in)
