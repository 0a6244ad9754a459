"""Find a loadable Hugging Face model directory in a channel/input folder or a model.tar.gz."""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import zlib
import tempfile
from pathlib import Path
from typing import Any

METADATA_FILE = "continuum.json"
CONFIG_FILE = "config.json"
ARCHIVE_SUFFIX = ".tar.gz"
EXTRACTED_SUFFIX = ".extracted"
COMPLETE_MARKER = ".complete"
# Below this size, intra-op threads cost more than they save on CPU (10x slower on a busy 2-core box).
SINGLE_THREAD_MAX_PARAMETERS = 20_000_000


def _model_dir_within(folder: Path) -> Path | None:
    """`folder` itself if it holds config.json, else its single subfolder that does, else None."""
    if (folder / CONFIG_FILE).is_file():
        return folder
    candidates = sorted(
        child
        for child in folder.iterdir()
        if child.is_dir() and not child.name.endswith(EXTRACTED_SUFFIX) and (child / CONFIG_FILE).is_file()
    )
    if len(candidates) > 1:
        names = ", ".join(str(c) for c in candidates)
        raise ValueError(f"{folder}: more than one model directory found ({names}); expected one")
    return candidates[0] if candidates else None


def _archive_within(folder: Path) -> Path | None:
    """The single *.tar.gz file directly inside `folder`, else None."""
    archives = sorted(p for p in folder.glob(f"*{ARCHIVE_SUFFIX}") if p.is_file())
    if len(archives) > 1:
        names = ", ".join(p.name for p in archives)
        raise ValueError(f"{folder}: more than one model archive found ({names}); expected one")
    return archives[0] if archives else None


def _extract_once(archive: Path) -> Path:
    """Extract `archive` next to itself (or to a temp folder if that is read-only), once; return the folder."""
    target = archive.with_name(archive.name[: -len(ARCHIVE_SUFFIX)] + EXTRACTED_SUFFIX)
    if (target / COMPLETE_MARKER).is_file():
        return target
    try:
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
    except OSError:
        target = Path(tempfile.mkdtemp(prefix="model-"))
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:  # EOFError: a truncated .gz
        raise ValueError(f"{archive}: cannot extract model archive ({err}); the file is damaged or not a "
                         "tar.gz: upload it again") from err
    (target / COMPLETE_MARKER).touch()
    return target


def contains_model(path: Path) -> bool:
    """Whether `path` is a model archive or a folder holding a model directory or archive."""
    path = Path(path)
    if path.is_file():
        return path.name.endswith(ARCHIVE_SUFFIX)
    if not path.is_dir():
        return False
    return _model_dir_within(path) is not None or _archive_within(path) is not None


def materialize_model_dir(path: Path) -> Path:
    """Return the directory `from_pretrained` can load from `path`.

    `path` is a model directory (config.json at its top or one level down), a folder holding a
    `*.tar.gz` model archive, or the archive itself; archives are extracted safely next to
    themselves, once.
    """
    path = Path(path)
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIX):
        archive: Path | None = path
    elif path.is_dir():
        found = _model_dir_within(path)
        if found is not None:
            return found
        archive = _archive_within(path)
    else:
        raise FileNotFoundError(f"{path}: no such model directory or model archive")
    if archive is None:
        raise FileNotFoundError(
            f"{path}: holds neither a model directory ({CONFIG_FILE} at the top or one level down) "
            f"nor a model{ARCHIVE_SUFFIX}"
        )
    extracted = _extract_once(archive)
    found = _model_dir_within(extracted)
    if found is None:
        raise ValueError(f"{archive}: the archive holds no {CONFIG_FILE} at its top or one level down")
    return found


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """The model's continuum.json as a dict ({} when the model has none)."""
    meta_path = Path(model_dir) / METADATA_FILE
    if not meta_path.is_file():
        return {}
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path}: invalid JSON at line {err.lineno}: {err.msg}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{meta_path}: expected a JSON object, got {type(data).__name__}")
    return data


def limit_threads_for_small_models(model: Any, cuda_available: bool) -> None:
    """Run a small model on one CPU thread unless OMP_NUM_THREADS says otherwise or a GPU is in use."""
    import torch

    if "OMP_NUM_THREADS" in os.environ or cuda_available:
        return
    if model.num_parameters() <= SINGLE_THREAD_MAX_PARAMETERS:
        torch.set_num_threads(1)
