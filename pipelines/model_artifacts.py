"""A registered model version on this machine: its artifact fetched and unpacked once, answered by its own serving code.

The cache lives in the local home (`$CONTINUUM_HOME/cache/models/<sha256(ModelDataUrl)[:16]>/`),
for the local runtime and `--aws` alike; a `.source.json` stamp records which object (local size
and mtime, or the S3 ETag) was unpacked, so a replaced artifact is unpacked again. Answers come
from a subprocess running `containers/serving/serve.py`'s loading path (the artifact's
`code/inference.py` when it ships one, as the endpoint does) with the handler's hooks
`model_fn → input_fn → predict_fn → output_fn`: exactly what an `/invocations` request runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import zlib
from pathlib import Path
from typing import Any

from pipelines.backend import Backend
from pipelines.paths import SERVING_DIR
from pipelines.registry_ops import ModelVersion, find_version

CACHE_SUBDIR = Path("cache") / "models"
STAMP_FILE = ".source.json"
ARCHIVE_NAME = "model.tar.gz"

# Runs in a fresh interpreter: the serving image's loading path and request hooks, nothing of pipelines/.
_ANSWER_SCRIPT = r"""
import json, sys
serving_dir, model_dir, reply_path = sys.argv[1:4]
sys.path.insert(0, serving_dir)
import serve
root = serve.find_model_dir(model_dir)
handler = serve.load_handler(root)
loaded = handler.model_fn(str(root))
try:
    data = handler.input_fn(sys.stdin.buffer.read(), "application/json")
    reply = handler.output_fn(handler.predict_fn(data, loaded), "application/json")
except ValueError as err:
    print(f"the model's handler refused the request: {err}", file=sys.stderr)
    sys.exit(3)
with open(reply_path, "w", encoding="utf-8") as out:
    out.write(reply if isinstance(reply, str) else reply.decode("utf-8"))
"""


class ArtifactError(RuntimeError):
    """A version's artifact cannot be fetched, unpacked or answered from; the message says why."""


def parse_version(text: str) -> int | None:
    """`3`, `v3` → 3; `latest` → None (the newest version)."""
    if text.strip().lower() == "latest":
        return None
    try:
        number = int(text.strip().lower().removeprefix("v"))
    except ValueError as exc:
        raise ValueError(f"expected a version number (3, v3) or 'latest', got {text!r}") from exc
    if number < 1:
        raise ValueError(f"version numbers start at 1, got {text!r}")
    return number


def resolve_version(backend: Backend, group: str, text: str) -> ModelVersion:
    """The registered version `text` names, whatever its approval status; LookupError when there is none."""
    version = find_version(backend.client("sagemaker"), group, parse_version(text))
    if not version.model_data_url:
        raise LookupError(f"version {version.version} has no ModelDataUrl in the registry")
    return version


def cache_root(home: Path) -> Path:
    """Where unpacked artifacts are kept under a local home."""
    return Path(home) / CACHE_SUBDIR


def _local_source(path: Path, uri: str) -> tuple[Path, str]:
    """(the artifact's file or folder in the local S3 stand-in, a fingerprint of it: size, mtime, inode)."""
    if path.is_dir():
        entries = [p for p in path.iterdir() if p.name != ".DS_Store"]
        if len(entries) == 1 and entries[0].name == ARCHIVE_NAME:
            path = entries[0]
    if path.is_file():
        stat = path.stat()
        return path, f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
    if path.is_dir() and any(path.rglob("config.json")):
        stats = [(p, p.stat()) for p in sorted(path.rglob("*")) if p.is_file()]
        listing = "".join(f"{p}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\0" for p, st in stats)
        return path, hashlib.sha256(listing.encode("utf-8")).hexdigest()
    raise FileNotFoundError(f"the artifact {uri} is missing from the local S3 ({path})")


def _s3_fingerprint(s3: Any, uri: str) -> str | None:
    """The object's ETag, or None when `uri` is not an object (it may be a prefix)."""
    from botocore.exceptions import ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        return str(s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _unpack(source: Path, dest: Path) -> None:
    """A model.tar.gz (checked member by member, as the local endpoints do) or a model folder into `dest`."""
    import tarfile

    from pipelines.local.endpoints import safe_extract

    if source.is_dir():
        shutil.copytree(source, dest)
    elif tarfile.is_tarfile(source):
        dest.mkdir(parents=True)
        try:
            safe_extract(source, dest)
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise ArtifactError(f"{source} is not a readable model archive: {exc}") from exc
    else:
        raise ArtifactError(f"{source} is neither a tar archive nor a model folder")


def _fill(backend: Backend, uri: str, staging: Path) -> str:
    """Fetch and unpack the artifact at `uri` into `staging`; returns the fingerprint of what was unpacked."""
    local = backend.local_file(uri)
    if local is not None:  # read in place, fingerprinted by stat
        source, fingerprint = _local_source(local, uri)
        _unpack(source, staging)
        return fingerprint
    s3 = backend.client("s3")
    fingerprint = _s3_fingerprint(s3, uri)
    with tempfile.TemporaryDirectory(prefix="continuum-artifact-", dir=staging.parent) as tmp:
        if fingerprint is not None:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            archive = Path(tmp) / ARCHIVE_NAME
            s3.download_file(bucket, key, str(archive))
            _unpack(archive, staging)
            return fingerprint
        from pipelines.s3_transfer import download_prefix  # an uncompressed artifact: a prefix of files

        try:
            folder = download_prefix(s3, uri, Path(tmp) / "model")
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"the artifact {uri} is missing from S3") from exc
        inner = [p for p in folder.iterdir()]
        _unpack(inner[0] if len(inner) == 1 and inner[0].name == ARCHIVE_NAME else folder, staging)
        return "prefix"


def _current_fingerprint(backend: Backend, uri: str) -> str | None:
    """What the artifact is now (None: unknown without downloading, e.g. an S3 prefix)."""
    local = backend.local_file(uri)
    if local is not None:
        return _local_source(local, uri)[1]
    return _s3_fingerprint(backend.client("s3"), uri)


def _read_stamp(target: Path) -> dict[str, str] | None:
    try:
        return json.loads((target / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def materialize(backend: Backend, uri: str, root: Path) -> tuple[Path, bool]:
    """The artifact at `uri` unpacked under `root` (keyed by the URI): (its folder, whether the cache had it)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"the version's ModelDataUrl is not an s3:// URI: {uri!r}")
    target = Path(root) / hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
    stamp = _read_stamp(target)
    if stamp is not None and stamp.get("uri") == uri:
        current = _current_fingerprint(backend, uri)
        if current is None or current == stamp.get("fingerprint"):
            return target, True
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".staging-{uuid.uuid4().hex}")
    try:
        fingerprint = _fill(backend, uri, staging)
        (staging / STAMP_FILE).write_text(json.dumps({"uri": uri, "fingerprint": fingerprint}) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:  # another process filled it first
            if _read_stamp(target) is None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, False


def answer(model_dir: Path, prompts: list[str], max_new_tokens: int, timeout: float | None = None) -> list[str]:
    """Each prompt's generated text, from the model in `model_dir` through its serving handler (a subprocess)."""
    request = json.dumps({"inputs": prompts, "parameters": {"max_new_tokens": max_new_tokens}}).encode("utf-8")
    env = {**os.environ, "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory(prefix="continuum-try-") as tmp:
        reply_path = Path(tmp) / "reply.json"
        done = subprocess.run([sys.executable, "-c", _ANSWER_SCRIPT, str(SERVING_DIR), str(model_dir), str(reply_path)],
                              input=request, capture_output=True, env=env, timeout=timeout, check=False)
        if done.returncode != 0 or not reply_path.is_file():
            lines = [line for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
            raise ArtifactError(lines[-1].strip() if lines else f"the serving code exited with {done.returncode}")
        reply = json.loads(reply_path.read_text(encoding="utf-8"))
    return [item["generated_text"] for item in reply]
