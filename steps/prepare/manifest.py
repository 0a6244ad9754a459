"""Data versions: a content hash of the prepared examples, and the manifest stored with the data.

`data_version` is sha256 over the sorted 16-byte content digests of every output example (train,
validation and test, replayed ones included): the same examples give the same version whatever
their order, sources or file names. The manifest (`train/manifest.json`, next to the train split
it describes, so a later version's replay input carries it) records the inputs' hashes, the
outputs' hashes and counts, the example schema, the settings used, the replay and a profile of
the data; `train/examples.index.npz` holds every example's id and prompt key (64-bit integers),
which the next version compares against to count new, changed and removed examples. Both the
version and the index are computed from the staged units a bounded chunk at a time.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from prepare.spill import DIGEST_ROW, Bitmap, SpillSource, loaded, partition_totals, plan_groups, read_group
from prepare.units import Unit

MANIFEST_FILE = "manifest.json"
INDEX_FILE = "examples.index.npz"
MANIFEST_SCHEMA = "continuum.data-manifest/1"
EXAMPLE_SCHEMA = {"id": "string (16 hex digits)", "prompt": "string", "completion": "string",
                  "source": "string (file:line, replay: prefix for replayed examples)",
                  "messages": "list of {role: system|user|assistant, content: string}, ending with the completion",
                  "heldout": "validation/test rows only (holdout phrasings): phrasing (a held-out phrasing of a fact "
                             "trained through another) or recall (a copy of a train example, re-asked)"}


def data_version(digests: np.ndarray) -> str:
    """sha256 over the (n, 2) uint64 content digests, sorted: independent of order."""
    rows = np.ascontiguousarray(digests, dtype=np.uint64).reshape(-1, 2)
    ordered = rows[np.lexsort((rows[:, 1], rows[:, 0]))] if rows.size else rows
    return hashlib.sha256(ordered.tobytes()).hexdigest()


def _digest_group(sources: list[SpillSource], lo: int, hi: int, kept: Bitmap) -> bytes:
    rows, indices = read_group(sources, DIGEST_ROW, lo, hi)
    rows = rows[kept.get(indices)]
    order = np.lexsort((rows["low"], rows["key"]))
    ordered = np.empty((order.size, 2), np.uint64)
    ordered[:, 0], ordered[:, 1] = rows["key"][order], rows["low"][order]
    return ordered.tobytes()


def staged_data_version(units: list[Unit], kept_path: Path, size: int) -> str:
    """`data_version` of the kept examples of staged units, sorted one digest range at a time."""
    sources = loaded([unit.spill("digests") for unit in units])
    kept = Bitmap.load(kept_path, size)
    digest = hashlib.sha256()
    for lo, hi in plan_groups(partition_totals(sources), DIGEST_ROW):
        digest.update(_digest_group(sources, lo, hi, kept))
    return digest.hexdigest()


@dataclass(frozen=True)
class PreviousData:
    """A previous version's manifest and where its example index is (None: it has none)."""

    manifest: dict[str, Any]
    index: Path | None

    @property
    def version(self) -> str:
        return str(self.manifest.get("data_version", ""))

    @property
    def size(self) -> int:
        """How many examples the index lists."""
        if self.index is None:
            return 0
        with zipfile.ZipFile(self.index) as archive, archive.open("ids.npy") as member:
            return _npy_header(member)[0]

    def chunks(self, name: str, rows: int = 1 << 16) -> Iterator[np.ndarray]:
        """The index's `ids` or `prompt_keys`, a chunk of at most `rows` at a time."""
        if self.index is None:
            return
        with zipfile.ZipFile(self.index) as archive, archive.open(f"{name}.npy") as member:
            count, dtype = _npy_header(member)
            for start in range(0, count, rows):
                size = min(rows, count - start) * dtype.itemsize
                yield np.frombuffer(member.read(size), dtype).astype(np.uint64)


def _npy_header(member: IO[bytes]) -> tuple[int, np.dtype]:
    version = np.lib.format.read_magic(member)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(member)
    return int(np.prod(shape)), dtype


def read_previous(folder: Path | None) -> PreviousData | None:
    """The manifest and index under `folder` (searched recursively), or None when it has none."""
    if folder is None or not Path(folder).is_dir():
        return None
    manifests = sorted(Path(folder).rglob(MANIFEST_FILE))
    if not manifests:
        return None
    manifest = json.loads(manifests[0].read_text(encoding="utf-8"))
    index_path = manifests[0].with_name(INDEX_FILE)
    return PreviousData(manifest, index_path if index_path.is_file() else None)


def write_index(path: Path, units: list[Unit], kept_path: Path, size: int, count: int) -> Path:
    """examples.index.npz (as numpy.savez writes it) of the `count` kept examples, in order.

    Stored, not deflated: ids and prompt keys are hashes, which do not compress (deflating them cost
    ~0.3 s per million examples for no smaller file).
    """
    kept = Bitmap.load(kept_path, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, column in (("ids", "id"), ("prompt_keys", "prompt_key")):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<u8")), "fortran_order": False,
                          "shape": (count,)}
                np.lib.format.write_array_header_1_0(member, header)
                for unit in units:
                    for start, columns in unit.columns():
                        chosen = kept.slice(unit.base + start, unit.base + start + columns.size)
                        member.write(columns[column][chosen].astype("<u8").tobytes())
    return path


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
