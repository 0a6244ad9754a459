"""Copying folders to and from S3 prefixes through a backend's S3 client (local stand-in or AWS)."""
from __future__ import annotations

from pathlib import Path

from pipelines import s3_layout
from pipelines.backend import Backend

# One PutObject per file (S3 takes up to 5 GB that way); model shards stay below it.
_SINGLE_PUT_LIMIT = 5 * 1024**3 - 1


def upload_directory(backend: Backend, directory: Path, uri_prefix: str, last: str | None = None) -> str:
    """Upload every file under `directory` to `uri_prefix/` through the backend's S3 client (`last`: the relative
    path uploaded after all others, so its presence means the upload completed)."""
    from boto3.s3.transfer import TransferConfig

    bucket, _, key_prefix = uri_prefix.removeprefix("s3://").partition("/")
    s3 = backend.client("s3")
    transfer = TransferConfig(multipart_threshold=_SINGLE_PUT_LIMIT)
    files = sorted((p for p in directory.rglob("*") if p.is_file()),
                   key=lambda p: (p.relative_to(directory).as_posix() == last, p))
    if not files:
        raise FileNotFoundError(f"{directory}: no files to upload")
    for path in files:
        key = f"{key_prefix.rstrip('/')}/{path.relative_to(directory).as_posix()}"
        s3.upload_file(str(path), bucket, key, Config=transfer)
    return uri_prefix.rstrip("/")


def download_prefix(backend_client: object, uri: str, target: Path) -> Path:
    """Every object under an s3:// prefix into `target` (keys relative to the prefix)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    found = 0
    for page in backend_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):  # type: ignore[attr-defined]
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix):].lstrip("/") or Path(item["Key"]).name
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            backend_client.download_file(bucket, item["Key"], str(destination))  # type: ignore[attr-defined]
            found += 1
    if not found:
        raise FileNotFoundError(f"{uri}: no objects under this prefix")
    return target


def stage_directory(backend: Backend, directory: Path, uri_root: str) -> str:
    """Upload `directory` under `uri_root/<content hash>` and return that URI."""
    return upload_directory(backend, directory, f"{uri_root}/{s3_layout.content_digest(directory)}")
