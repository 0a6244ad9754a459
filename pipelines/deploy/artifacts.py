"""A model version's artifact for people: a presigned S3 URL on AWS, the file itself locally."""
from __future__ import annotations

from pipelines.backend import Backend

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs live at most 7 days


def artifact_location(backend: Backend, model_data_url: str, expires_in: int = 3600) -> str:
    """``https://…`` (GET, valid ``expires_in`` s) on AWS; the local path of the artifact on the local backend."""
    if not model_data_url.startswith("s3://"):
        raise ValueError(f"the version's ModelDataUrl is not an s3:// URI: {model_data_url!r}")
    if backend.is_local:
        from pipelines.local.s3 import LocalS3

        assert backend.home is not None
        path = LocalS3(backend.home / "s3").path(model_data_url)
        if not path.exists():
            raise FileNotFoundError(f"{model_data_url} is not in the local S3 ({path} is missing)")
        return str(path)
    if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"--expires-in must be within 1..{MAX_PRESIGN_SECONDS} seconds, got {expires_in}")
    from botocore.config import Config as BotoConfig

    bucket, _, key = model_data_url.removeprefix("s3://").partition("/")
    s3 = backend.session.client("s3", config=BotoConfig(signature_version="s3v4"))  # SigV2 URLs are deprecated
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in)
