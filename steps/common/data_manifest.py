"""Data versions: a content hash of the prepared examples, and the manifest stored with the data.

`data_version` is sha256 over the sorted 16-byte content digests of every output example (train,
validation and test, replayed ones included): the same examples give the same version whatever
their order, sources or file names. The manifest (`train/manifest.json`, next to the train split
it describes, so a later version's replay input carries it) records the inputs' hashes, the
outputs' hashes and counts, the example schema, the settings used, the replay and a profile of
the data; `train/examples.index.npz` holds every example's id and prompt key (64-bit integers),
which the next version compares against to count new, changed and removed examples.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST_FILE = "manifest.json"
INDEX_FILE = "examples.index.npz"
MANIFEST_SCHEMA = "continuum.data-manifest/1"
EXAMPLE_SCHEMA = {"id": "string (16 hex digits)", "prompt": "string", "completion": "string",
                  "source": "string (file:line, replay: prefix for replayed examples)",
                  "messages": "list of {role: system|user|assistant, content: string}, ending with the completion"}


def data_version(digests: np.ndarray) -> str:
    """sha256 over the (n, 2) uint64 content digests, sorted: independent of order."""
    rows = np.ascontiguousarray(digests, dtype=np.uint64).reshape(-1, 2)
    ordered = rows[np.lexsort((rows[:, 1], rows[:, 0]))] if rows.size else rows
    return hashlib.sha256(ordered.tobytes()).hexdigest()


@dataclass(frozen=True)
class PreviousData:
    """A previous version's manifest and example index, read from its train split folder."""

    manifest: dict[str, Any]
    ids: np.ndarray
    prompt_keys: np.ndarray

    @property
    def version(self) -> str:
        return str(self.manifest.get("data_version", ""))


def read_previous(folder: Path | None) -> PreviousData | None:
    """The manifest and index under `folder` (searched recursively), or None when it has none."""
    if folder is None or not Path(folder).is_dir():
        return None
    manifests = sorted(Path(folder).rglob(MANIFEST_FILE))
    if not manifests:
        return None
    manifest = json.loads(manifests[0].read_text(encoding="utf-8"))
    index_path = manifests[0].with_name(INDEX_FILE)
    if not index_path.is_file():
        return PreviousData(manifest, np.empty(0, np.uint64), np.empty(0, np.uint64))
    with np.load(index_path) as index:
        return PreviousData(manifest, index["ids"], index["prompt_keys"])


def write_index(folder: Path, ids: np.ndarray, prompt_keys: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / INDEX_FILE, ids=ids.astype(np.uint64), prompt_keys=prompt_keys.astype(np.uint64))


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def build_manifest(version: str, inputs: list[dict[str, Any]], outputs: dict[str, dict[str, Any]],
                   rows: dict[str, int], settings: dict[str, Any], replay: dict[str, Any],
                   previous_version: str | None, profile: dict[str, Any]) -> dict[str, Any]:
    return {"schema": MANIFEST_SCHEMA, "data_version": version, "previous_data_version": previous_version,
            "inputs": inputs, "outputs": outputs, "rows": rows, "example_schema": EXAMPLE_SCHEMA,
            "settings": settings, "replay": replay, "profile": profile}
