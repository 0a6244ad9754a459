"""Local S3: ``s3://bucket/key`` ↔ ``<root>/bucket/key``.

Objects are plain files, so steps, endpoints and people can read them directly. Writes are atomic
(temporary file in ``<root>/.staging`` + rename). Limits a folder imposes, each reported with a
clear error: keys may not end in ``/`` or hold empty, ``.`` or ``..`` segments, and one key may
not be both an object and the folder of another (``a`` and ``a/b``).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
STAGING_DIR = ".staging"


class S3UriError(ValueError):
    """A malformed ``s3://`` URI, bucket name or key."""


class NoSuchBucket(FileNotFoundError):
    """The bucket does not exist."""


class NoSuchKey(FileNotFoundError):
    """The object does not exist."""


@dataclass(frozen=True)
class S3Object:
    """One stored object, as S3 lists it."""

    bucket: str
    key: str
    size: int
    last_modified: datetime
    etag: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def validate_bucket(bucket: str) -> str:
    """``bucket`` if it is a valid S3 bucket name, else :class:`S3UriError`."""
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise S3UriError(
            f"invalid S3 bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit"
        )
    return bucket


def validate_key(key: str, *, allow_empty: bool = False) -> str:
    """``key`` if a folder can hold it as a file path, else :class:`S3UriError`."""
    if not key:
        if allow_empty:
            return key
        raise S3UriError("empty S3 object key")
    segments = key.split("/")
    if key.endswith("/") or any(seg in ("", ".", "..") for seg in segments):
        raise S3UriError(
            f"S3 key {key!r} is not supported locally: keys may not end in '/' or contain empty, "
            "'.' or '..' segments"
        )
    return key


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``"s3://bucket/a/b"`` → ``("bucket", "a/b")``; the key may be empty (``s3://bucket``)."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise S3UriError(f"not an S3 URI (expected s3://bucket/key): {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise S3UriError(f"S3 URI has no bucket: {uri!r}")
    return validate_bucket(bucket), key


def join_uri(prefix: str, relative: str) -> str:
    """``join_uri("s3://b/p/", "x/y")`` → ``"s3://b/p/x/y"`` (exactly one slash between)."""
    return prefix.rstrip("/") + "/" + relative.lstrip("/")


def _etag(stat: os.stat_result) -> str:
    # A cheap, stable stand-in: real S3 ETags are not content MD5s for multipart uploads either.
    return '"' + hashlib.md5(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest() + '"'


class LocalS3:
    """S3 objects as files under ``root`` (normally ``$CONTINUUM_HOME/s3``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    # -- URIs and paths -------------------------------------------------------------------------
    def path(self, uri: str) -> Path:
        """The local path of ``uri`` (object file, or the folder of a bucket/prefix)."""
        bucket, key = split_s3_uri(uri)
        key = key.rstrip("/")
        return self.root / bucket / validate_key(key, allow_empty=True) if key else self.root / bucket

    def bucket_path(self, bucket: str) -> Path:
        return self.root / validate_bucket(bucket)

    # -- buckets --------------------------------------------------------------------------------
    def list_buckets(self) -> list[tuple[str, datetime]]:
        """``[(name, creation time)]`` sorted by name."""
        out = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and _BUCKET_RE.match(entry.name):
                out.append((entry.name, datetime.fromtimestamp(entry.stat().st_mtime, timezone.utc)))
        return out

    def bucket_exists(self, bucket: str) -> bool:
        return self.bucket_path(bucket).is_dir()

    def create_bucket(self, bucket: str) -> None:
        self.bucket_path(bucket).mkdir(parents=True, exist_ok=True)

    # -- objects --------------------------------------------------------------------------------
    def _object_path(self, uri: str) -> Path:
        bucket, key = split_s3_uri(uri)
        return self.root / bucket / validate_key(key)

    def put_bytes(self, uri: str, data: bytes) -> Path:
        """Write ``data`` as object ``uri`` (creating the bucket folder); returns its path."""
        target = self._object_path(uri)
        staged = self._stage()
        staged.write_bytes(data)
        return self._commit(staged, target, uri)

    def put_file(self, uri: str, local_file: Path | str) -> Path:
        """Copy ``local_file`` to object ``uri``; returns its path."""
        source = Path(local_file)
        if not source.is_file():
            raise FileNotFoundError(f"cannot upload {source}: not a file")
        target = self._object_path(uri)
        staged = self._stage()
        shutil.copyfile(source, staged)
        return self._commit(staged, target, uri)

    def put_staged(self, uri: str, staged: Path) -> Path:
        """Move an already written file from :meth:`staging_file` into place as ``uri``."""
        return self._commit(staged, self._object_path(uri), uri)

    def staging_file(self) -> Path:
        """A fresh path in the staging folder (same filesystem, so a later rename is atomic)."""
        return self._stage()

    def get_bytes(self, uri: str) -> bytes:
        """The content of object ``uri``; :class:`NoSuchKey` if it does not exist."""
        return self._existing(uri).read_bytes()

    def exists(self, uri: str) -> bool:
        """Whether ``uri`` names an object (a file, not a prefix)."""
        try:
            return self._object_path(uri).is_file()
        except S3UriError:
            return False

    def head(self, uri: str) -> S3Object:
        """Size, modification time and ETag of object ``uri``."""
        path = self._existing(uri)
        bucket, key = split_s3_uri(uri)
        return self._describe(bucket, key, path)

    def delete(self, uri: str) -> None:
        """Remove object ``uri`` (absent objects are fine, as on S3) and prune empty folders."""
        path = self._object_path(uri)
        if path.is_file():
            path.unlink()
            bucket_dir = self.root / split_s3_uri(uri)[0]
            parent = path.parent
            while parent != bucket_dir and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    def list_objects(self, bucket: str, prefix: str = "") -> list[S3Object]:
        """Objects of ``bucket`` whose key starts with ``prefix``, in S3's (UTF-8 binary) key order."""
        bucket_dir = self.bucket_path(bucket)
        if not bucket_dir.is_dir():
            raise NoSuchBucket(f"bucket {bucket!r} does not exist (local S3 root {self.root})")
        base = prefix[: prefix.rfind("/") + 1]
        start = bucket_dir / base.rstrip("/") if base.strip("/") else bucket_dir
        if not start.is_dir():
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for name in filenames:
                path = Path(dirpath) / name
                key = path.relative_to(bucket_dir).as_posix()
                if key.startswith(prefix):
                    found.append(self._describe(bucket, key, path))
        found.sort(key=lambda obj: obj.key.encode("utf-8"))
        return found

    def list(self, uri_prefix: str) -> list[str]:
        """URIs of every object whose key starts with the prefix of ``uri_prefix`` (sorted)."""
        bucket, prefix = split_s3_uri(uri_prefix)
        if not self.bucket_exists(bucket):
            return []
        return [obj.uri for obj in self.list_objects(bucket, prefix)]

    # -- folders --------------------------------------------------------------------------------
    def upload_dir(self, local_dir: Path | str, uri_prefix: str) -> list[str]:
        """Copy every file under ``local_dir`` to ``uri_prefix/<relative path>``; returns the URIs."""
        source = Path(local_dir)
        if not source.is_dir():
            raise NotADirectoryError(f"cannot upload {source}: not a directory")
        split_s3_uri(uri_prefix)
        uris = []
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            uri = join_uri(uri_prefix, path.relative_to(source).as_posix())
            self.put_file(uri, path)
            uris.append(uri)
        return uris

    def download_prefix(self, uri_prefix: str, local_dir: Path | str, *, allow_empty: bool = False) -> list[Path]:
        """Copy objects under ``uri_prefix`` into ``local_dir`` with SageMaker ``S3Prefix`` semantics.

        Every object whose key starts with the prefix is copied, keeping its path relative to the
        prefix (``s3://b/data/train`` → ``data/train/x/a.jsonl`` lands at ``x/a.jsonl``). A prefix
        naming a single object copies that object into the folder under its own name. As on
        SageMaker, no matching object is an error unless ``allow_empty``.
        """
        bucket, prefix = split_s3_uri(uri_prefix)
        objects = self.list_objects(bucket, prefix) if self.bucket_exists(bucket) else []
        if not objects and not allow_empty:
            raise NoSuchKey(f"no S3 objects found under {uri_prefix} (local S3 root {self.root})")
        dest = Path(local_dir)
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for obj in objects:
            target = dest / _relative_to_prefix(obj.key, prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / bucket / obj.key, target)
            written.append(target)
        return written

    # -- internals ------------------------------------------------------------------------------
    def _existing(self, uri: str) -> Path:
        path = self._object_path(uri)
        if not path.is_file():
            raise NoSuchKey(f"no such S3 object: {uri} (looked for {path})")
        return path

    def _describe(self, bucket: str, key: str, path: Path) -> S3Object:
        stat = path.stat()
        return S3Object(bucket, key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, timezone.utc), _etag(stat))

    def _stage(self) -> Path:
        staging = self.root / STAGING_DIR
        staging.mkdir(parents=True, exist_ok=True)
        return staging / uuid.uuid4().hex

    def _commit(self, staged: Path, target: Path, uri: str) -> Path:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                raise IsADirectoryError(target)
            os.replace(staged, target)
        except (NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
            staged.unlink(missing_ok=True)
            raise S3UriError(
                f"cannot store {uri} locally: one key is both an object and a folder of other keys ({exc})"
            ) from exc
        return target


def _relative_to_prefix(key: str, prefix: str) -> str:
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    rest = key[len(prefix):]
    if not prefix or prefix.endswith("/") or rest.startswith("/"):
        return rest.lstrip("/")
    # The prefix ends inside a path segment ("data/tr" matching "data/train/a"): keep that segment.
    return prefix.rsplit("/", 1)[-1] + rest
