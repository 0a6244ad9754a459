"""In-process AWS for the control plane: a boto3 Session whose calls never leave the process.

``local_boto3_session(home)`` registers a botocore ``before-send`` handler that answers each
request, already serialised and signed exactly as for AWS, with an ``AWSResponse`` in the
service's wire format, so the SageMaker SDK, the CLI and plain boto3 run one code path:

- ``s3`` → :class:`~pipelines.local.s3.LocalS3` (REST-XML: ListBuckets, HeadBucket, CreateBucket,
  GetBucketLocation, PutObject, GetObject (ranges), HeadObject, ListObjectsV2, DeleteObject(s),
  multipart uploads). ``aws-chunked`` bodies with trailing checksums are decoded and verified.
- ``sagemaker`` / ``sagemaker-runtime`` (and the ``cloudwatch`` / ``application-autoscaling`` operations
  of ``MONITORING_OPERATIONS``) → the same :func:`~pipelines.local.api_server.handle_wire` the HTTP server uses.
- ``sts`` GetCallerIdentity → the fixed local account ``000000000000``.

Any other service raises :class:`LocalServiceNotAvailable` instead of reaching the network.
"""
from __future__ import annotations

import base64
import hashlib
import io
import re
import shutil
import uuid
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, quote_plus, unquote, urlsplit
from xml.etree import ElementTree

import boto3
import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import BotoCoreError

from pipelines.local.api_server import DUMMY_CREDENTIALS, handle_wire, record_call
from pipelines.local.home import continuum_home
from pipelines.local.registry import ACCOUNT_ID
from pipelines.local.s3 import LocalS3, NoSuchKey, S3UriError
from pipelines.local.sagemaker_api import MONITORING_OPERATIONS, SageMakerAPI

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$")
_CHUNK = 1024 * 1024
# botocore's event names use the hyphenated service id (application-auto-scaling).
LOCAL_MONITORING_OPERATIONS = {"cloudwatch": MONITORING_OPERATIONS["cloudwatch"],
                               "application-auto-scaling": MONITORING_OPERATIONS["application-autoscaling"]}


class LocalServiceNotAvailable(BotoCoreError):
    fmt = ("The local runtime does not serve {service} {operation}: only s3, sagemaker, sagemaker-runtime, "
           "sts GetCallerIdentity and the CloudWatch / Application Auto Scaling calls of endpoint guardrails and "
           "monitoring are available without AWS.")


def local_boto3_session(home: Path | None = None, region: str = "us-east-1", *,
                        api: SageMakerAPI | None = None) -> boto3.Session:
    """A boto3 Session served entirely by the local stand-ins under ``home`` ($CONTINUUM_HOME)."""
    home = Path(home) if home is not None else continuum_home()
    # No profile lookup (AWS_PROFILE is ignored): the user's AWS configuration has no say locally.
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    core.set_config_variable("region", region)
    core.set_credentials(DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"], DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    transport = LocalTransport(api or SageMakerAPI(home, region), region)
    core.register("before-send", transport)
    session = boto3.Session(botocore_session=core, region_name=region)
    session.local_transport = transport  # type: ignore[attr-defined]  # reachable for callers and tests
    return session


class _Raw(io.RawIOBase):
    """A response body botocore can both ``stream()`` (whole content) and ``read(n)`` (StreamingBody)."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size if size is not None else -1)
        if not data or size is None or size < 0:
            self._source.close()
        return data

    def stream(self, **_: Any) -> Iterator[bytes]:
        while chunk := self._source.read(_CHUNK):
            yield chunk
        self._source.close()

    def close(self) -> None:
        self._source.close()
        super().close()


def _response(url: str, status: int, headers: dict[str, str] | None = None,
              body: bytes | IO[bytes] = b"") -> AWSResponse:
    source = io.BytesIO(body) if isinstance(body, bytes) else body
    headers = dict(headers or {})
    if isinstance(body, bytes):
        headers.setdefault("Content-Length", str(len(body)))
    return AWSResponse(url, status, headers, _Raw(source))


def _xml(root: str, children: list[Any], ns: str = S3_NS) -> bytes:
    """Serialise ``(tag, text-or-children)`` pairs under ``<root xmlns=ns>``."""
    element = ElementTree.Element(root, xmlns=ns) if ns else ElementTree.Element(root)
    _fill(element, children)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + ElementTree.tostring(element)


def _fill(parent: ElementTree.Element, children: list[Any]) -> None:
    for tag, value in children:
        child = ElementTree.SubElement(parent, tag)
        if isinstance(value, list):
            _fill(child, value)
        else:
            child.text = str(value)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _body_stream(body: Any) -> IO[bytes]:
    if body is None:
        return io.BytesIO(b"")
    if isinstance(body, str):
        return io.BytesIO(body.encode("utf-8"))
    if isinstance(body, (bytes, bytearray)):
        return io.BytesIO(bytes(body))
    return body


def _headers(request: AWSPreparedRequest) -> dict[str, str]:
    """The request's headers, names lower-cased and values as text (botocore may hold bytes)."""
    return {str(name).lower(): value.decode("latin-1") if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()}


def _crc32_b64(crc: int) -> str:
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


class LocalTransport:
    """The ``before-send`` handler: routes each botocore request to its local stand-in."""

    def __init__(self, api: SageMakerAPI, region: str) -> None:
        self.api = api
        self.s3: LocalS3 = api.s3
        self.region = region
        self._uploads = self.s3.root / ".staging" / "multipart"

    def __call__(self, request: AWSPreparedRequest, event_name: str = "", **_: Any) -> AWSResponse:
        _, service, operation = (event_name.split(".", 2) + ["", ""])[:3]
        record_call(self.api, service, operation, caller="control-plane")
        if service in ("sagemaker", "sagemaker-runtime") or operation in LOCAL_MONITORING_OPERATIONS.get(service, ()):
            body = _body_stream(request.body).read()
            path = urlsplit(request.url)
            wire = handle_wire(self.api, request.method, path.path + (f"?{path.query}" if path.query else ""),
                               _headers(request), body)
            return _response(request.url, wire.status, wire.headers, wire.body)
        if service == "s3":
            return self._s3(operation, request)
        if service == "sts" and operation == "GetCallerIdentity":
            return _response(request.url, 200, {"Content-Type": "text/xml"}, _xml("GetCallerIdentityResponse", [
                ("GetCallerIdentityResult", [("Arn", f"arn:aws:iam::{ACCOUNT_ID}:user/continuum-local"),
                                             ("UserId", "CONTINUUMLOCAL"), ("Account", ACCOUNT_ID)]),
                ("ResponseMetadata", [("RequestId", str(uuid.uuid4()))]),
            ], STS_NS))
        raise LocalServiceNotAvailable(service=service, operation=operation)

    # -- S3 -------------------------------------------------------------------------------------
    def _s3(self, operation: str, request: AWSPreparedRequest) -> AWSResponse:
        parts = urlsplit(request.url)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = unquote(parts.path)
        match = _VIRTUAL_HOST.match(parts.hostname or "")
        if match:
            bucket, key = match.group("bucket"), path.lstrip("/")
        else:
            bucket, _, key = path.lstrip("/").partition("/")
        headers = _headers(request)
        handler = getattr(self, f"_s3_{operation}", None)
        try:
            if handler is None:
                raise S3Error(400, "NotImplemented", f"the local S3 does not implement {operation}")
            return handler(request, bucket, key, query, headers)
        except (S3Error, S3UriError) as exc:
            err = exc if isinstance(exc, S3Error) else S3Error(400, "InvalidArgument", str(exc))
            body = b"" if request.method == "HEAD" else _xml("Error", [
                ("Code", err.code), ("Message", err.message), *err.fields.items(), ("RequestId", "local")], ns="")
            return _response(request.url, err.status, {"Content-Type": "application/xml"}, body)

    def _require_bucket(self, bucket: str) -> None:
        try:
            exists = self.s3.bucket_exists(bucket)
        except S3UriError as exc:
            raise S3Error(400, "InvalidBucketName", str(exc), BucketName=bucket) from exc
        if not exists:
            raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)

    def _uri(self, bucket: str, key: str) -> str:
        self._require_bucket(bucket)
        uri = f"s3://{bucket}/{key}"
        try:
            self.s3.path(uri)
        except S3UriError as exc:
            raise S3Error(400, "InvalidArgument", str(exc), Key=key) from exc
        return uri

    def _object_headers(self, uri: str) -> dict[str, str]:
        try:
            info = self.s3.head(uri)
        except NoSuchKey as exc:
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=uri.split("/", 3)[-1]) from exc
        return {"Content-Length": str(info.size), "ETag": info.etag, "Accept-Ranges": "bytes",
                "Last-Modified": format_datetime(info.last_modified, usegmt=True),
                "Content-Type": "binary/octet-stream"}

    def _s3_ListBuckets(self, request: AWSPreparedRequest, *_: Any) -> AWSResponse:
        buckets = [("Bucket", [("Name", name), ("CreationDate", _iso(created))])
                   for name, created in self.s3.list_buckets()]
        body = _xml("ListAllMyBucketsResult", [("Owner", [("ID", ACCOUNT_ID), ("DisplayName", "continuum-local")]),
                                               ("Buckets", buckets)])
        return _response(request.url, 200, {"Content-Type": "application/xml"}, body)

    def _s3_HeadBucket(self, request: AWSPreparedRequest, bucket: str, *_: Any) -> AWSResponse:
        self._require_bucket(bucket)
        return _response(request.url, 200, {"x-amz-bucket-region": self.region})

    def _s3_GetBucketLocation(self, request: AWSPreparedRequest, bucket: str, *_: Any) -> AWSResponse:
        self._require_bucket(bucket)
        region = "" if self.region == "us-east-1" else self.region
        body = b'<?xml version="1.0" encoding="UTF-8"?>' + ElementTree.tostring(
            _element("LocationConstraint", region))
        return _response(request.url, 200, {"Content-Type": "application/xml"}, body)

    def _s3_CreateBucket(self, request: AWSPreparedRequest, bucket: str, *_: Any) -> AWSResponse:
        try:
            self.s3.create_bucket(bucket)
        except S3UriError as exc:
            raise S3Error(400, "InvalidBucketName", str(exc), BucketName=bucket) from exc
        return _response(request.url, 200, {"Location": f"/{bucket}"})

    def _receive(self, request: AWSPreparedRequest, headers: dict[str, str]) -> tuple[Path, str]:
        """Write the request body to a staging file; returns (file, MD5 hex). Verifies checksums."""
        staged = self.s3.staging_file()
        stream = _body_stream(request.body)
        md5, crc = hashlib.md5(), 0
        trailers: dict[str, str] = {}
        with staged.open("wb") as out:
            chunks = _aws_chunks(stream, trailers) if "aws-chunked" in headers.get("content-encoding", "") else (
                iter(lambda: stream.read(_CHUNK), b""))
            for chunk in chunks:
                out.write(chunk)
                md5.update(chunk)
                crc = zlib.crc32(chunk, crc)
        expected = trailers.get("x-amz-checksum-crc32") or headers.get("x-amz-checksum-crc32")
        if expected and expected != _crc32_b64(crc):
            staged.unlink(missing_ok=True)
            raise S3Error(400, "BadDigest", "The CRC32 you specified did not match the calculated checksum.")
        if "content-md5" in headers and headers["content-md5"] != base64.b64encode(md5.digest()).decode():
            staged.unlink(missing_ok=True)
            raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
        return staged, md5.hexdigest()

    def _s3_PutObject(self, request: AWSPreparedRequest, bucket: str, key: str, _q: dict, headers: dict) -> AWSResponse:
        uri = self._uri(bucket, key)
        staged, _ = self._receive(request, headers)
        try:
            self.s3.put_staged(uri, staged)
        except S3UriError as exc:
            raise S3Error(400, "InvalidArgument", str(exc), Key=key) from exc
        return _response(request.url, 200, {"ETag": self.s3.head(uri).etag})

    def _s3_HeadObject(self, request: AWSPreparedRequest, bucket: str, key: str, *_: Any) -> AWSResponse:
        return _response(request.url, 200, self._object_headers(self._uri(bucket, key)))

    def _s3_GetObject(self, request: AWSPreparedRequest, bucket: str, key: str, _q: dict, headers: dict) -> AWSResponse:
        uri = self._uri(bucket, key)
        out = self._object_headers(uri)
        size = int(out["Content-Length"])
        handle = self.s3.path(uri).open("rb")
        byte_range = re.fullmatch(r"bytes=(\d*)-(\d*)", headers.get("range", "").strip())
        if not byte_range or size == 0:
            return _response(request.url, 200, out, handle)
        first, last = byte_range.groups()
        start = size - int(last) if not first else int(first)
        end = size - 1 if not first or not last else min(int(last), size - 1)
        if start >= size or start > end:
            handle.close()
            raise S3Error(416, "InvalidRange", "The requested range is not satisfiable")
        handle.seek(max(start, 0))
        out.update({"Content-Length": str(end - start + 1), "Content-Range": f"bytes {start}-{end}/{size}"})
        return _response(request.url, 206, out, io.BytesIO(handle.read(end - start + 1)))

    def _s3_DeleteObject(self, request: AWSPreparedRequest, bucket: str, key: str, *_: Any) -> AWSResponse:
        self.s3.delete(self._uri(bucket, key))
        return _response(request.url, 204)

    def _s3_DeleteObjects(self, request: AWSPreparedRequest, bucket: str, _key: str, _q: dict,
                          headers: dict) -> AWSResponse:
        self._require_bucket(bucket)
        root = ElementTree.fromstring(_body_stream(request.body).read())
        keys = [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]
        for key in keys:
            self.s3.delete(self._uri(bucket, key))
        body = _xml("DeleteResult", [("Deleted", [("Key", key)]) for key in keys])
        return _response(request.url, 200, {"Content-Type": "application/xml"}, body)

    def _s3_ListObjectsV2(self, request: AWSPreparedRequest, bucket: str, _key: str, query: dict,
                          _h: dict) -> AWSResponse:
        self._require_bucket(bucket)
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        max_keys = int(query.get("max-keys") or 1000)
        start_after = query.get("start-after", "")
        token = query.get("continuation-token")
        resume = base64.urlsafe_b64decode(token.encode()).decode() if token else start_after
        encode = (lambda s: quote_plus(s, safe="/")) if query.get("encoding-type") == "url" else (lambda s: s)
        entries: list[tuple[str, Any]] = []  # (sort key, S3Object | common prefix str)
        seen_prefixes: set[str] = set()
        for obj in self.s3.list_objects(bucket, prefix):
            rest = obj.key[len(prefix):]
            if delimiter and delimiter in rest:
                common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                if common not in seen_prefixes:
                    seen_prefixes.add(common)
                    entries.append((common, common))
            else:
                entries.append((obj.key, obj))
        entries = [e for e in entries if not resume or e[0].encode() > resume.encode()]
        page, truncated = entries[:max_keys], len(entries) > max_keys
        children: list[Any] = [("Name", bucket), ("Prefix", encode(prefix)), ("KeyCount", len(page)),
                               ("MaxKeys", max_keys), ("IsTruncated", "true" if truncated else "false")]
        if delimiter:
            children.append(("Delimiter", encode(delimiter)))
        if query.get("encoding-type"):
            children.append(("EncodingType", query["encoding-type"]))
        if token:
            children.append(("ContinuationToken", token))
        if start_after:
            children.append(("StartAfter", encode(start_after)))
        if truncated:
            children.append(("NextContinuationToken", base64.urlsafe_b64encode(page[-1][0].encode()).decode()))
        for _, entry in page:
            if isinstance(entry, str):
                children.append(("CommonPrefixes", [("Prefix", encode(entry))]))
            else:
                children.append(("Contents", [("Key", encode(entry.key)), ("LastModified", _iso(entry.last_modified)),
                                              ("ETag", entry.etag), ("Size", entry.size),
                                              ("StorageClass", "STANDARD")]))
        return _response(request.url, 200, {"Content-Type": "application/xml"}, _xml("ListBucketResult", children))

    # multipart uploads: parts are staged under <s3 root>/.staging/multipart/<upload id>/
    def _upload_dir(self, upload_id: str) -> Path:
        folder = self._uploads / upload_id
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id) or not folder.is_dir():
            raise S3Error(404, "NoSuchUpload", "The specified multipart upload does not exist.", UploadId=upload_id)
        return folder

    def _s3_CreateMultipartUpload(self, request: AWSPreparedRequest, bucket: str, key: str, *_: Any) -> AWSResponse:
        self._uri(bucket, key)
        upload_id = uuid.uuid4().hex
        (self._uploads / upload_id).mkdir(parents=True)
        body = _xml("InitiateMultipartUploadResult", [("Bucket", bucket), ("Key", key), ("UploadId", upload_id)])
        return _response(request.url, 200, {"Content-Type": "application/xml"}, body)

    def _s3_UploadPart(self, request: AWSPreparedRequest, bucket: str, key: str, query: dict,
                       headers: dict) -> AWSResponse:
        self._uri(bucket, key)
        folder = self._upload_dir(query.get("uploadId", ""))
        number = int(query["partNumber"])
        staged, md5_hex = self._receive(request, headers)
        staged.replace(folder / f"{number:05d}")
        return _response(request.url, 200, {"ETag": f'"{md5_hex}"'})

    def _s3_CompleteMultipartUpload(self, request: AWSPreparedRequest, bucket: str, key: str, query: dict,
                                    _h: dict) -> AWSResponse:
        uri = self._uri(bucket, key)
        folder = self._upload_dir(query.get("uploadId", ""))
        root = ElementTree.fromstring(_body_stream(request.body).read() or b"<CompleteMultipartUpload/>")
        numbers = [int(el.text or 0) for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "PartNumber"]
        parts = [folder / f"{n:05d}" for n in numbers] or sorted(folder.iterdir())
        missing = [p.name for p in parts if not p.is_file()]
        if missing:
            raise S3Error(400, "InvalidPart", f"parts {missing} were never uploaded")
        staged = self.s3.staging_file()
        with staged.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out)
        self.s3.put_staged(uri, staged)
        shutil.rmtree(folder, ignore_errors=True)
        body = _xml("CompleteMultipartUploadResult", [("Location", f"/{bucket}/{key}"), ("Bucket", bucket),
                                                      ("Key", key), ("ETag", self.s3.head(uri).etag)])
        return _response(request.url, 200, {"Content-Type": "application/xml"}, body)

    def _s3_AbortMultipartUpload(self, request: AWSPreparedRequest, bucket: str, key: str, query: dict,
                                 _h: dict) -> AWSResponse:
        shutil.rmtree(self._upload_dir(query.get("uploadId", "")), ignore_errors=True)
        return _response(request.url, 204)


def _element(tag: str, text: str) -> ElementTree.Element:
    element = ElementTree.Element(tag, xmlns=S3_NS)
    element.text = text
    return element


def _aws_chunks(stream: IO[bytes], trailers: dict[str, str]) -> Iterator[bytes]:
    """Decode an ``aws-chunked`` body (``<hex size>[;ext]\\r\\n<data>\\r\\n`` … ``0\\r\\n<trailers>\\r\\n``)."""
    reader = io.BufferedReader(_ReadAdapter(stream)) if not hasattr(stream, "readline") else stream
    while True:
        line = reader.readline()
        if not line:
            raise S3Error(400, "IncompleteBody", "aws-chunked body ended before its final chunk")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            break
        data = reader.read(size)
        if len(data) != size:
            raise S3Error(400, "IncompleteBody", "aws-chunked body ended inside a chunk")
        reader.readline()
        yield data
    for raw in iter(reader.readline, b""):
        text = raw.decode("utf-8").strip()
        if not text:
            break
        name, _, value = text.partition(":")
        trailers[name.strip().lower()] = value.strip()


class _ReadAdapter(io.RawIOBase):
    """Gives a ``read()``-only stream (botocore's AwsChunkedWrapper) a raw-IO face for buffering."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
