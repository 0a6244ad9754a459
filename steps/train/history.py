"""The adapter history of the modular strategy: one LoRA adapter per version, kept in the artifact.

`adapters/<generation, 4 digits>/` holds each version's peft adapter (adapter_config.json +
adapter_model.safetensors); generation g's adapter was trained on the merged weights of g - 1,
so base + adapters 1..N merged in order gives version N. continuum.json lists the entries under
`adapter_history`. A starting model without `adapters/` contributes its own `adapter/`.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HISTORY_DIR = "adapters"
ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class HistoryEntry:
    """One kept adapter: its version's generation and where it lies."""

    generation: int
    path: Path

    def record(self, root: Path) -> dict[str, Any]:
        return {"generation": self.generation, "path": str(self.path.relative_to(root))}


def entry_dir(root: Path, generation: int) -> Path:
    return Path(root) / HISTORY_DIR / f"{generation:04d}"


def read_history(model_dir: Path | None, metadata: dict[str, Any]) -> list[HistoryEntry]:
    """The adapters a starting model carries, oldest first: its `adapters/` history plus its own `adapter/`."""
    if model_dir is None:
        return []
    entries = {}
    history = Path(model_dir) / HISTORY_DIR
    if history.is_dir():
        for child in sorted(history.iterdir()):
            if child.is_dir() and child.name.isdigit() and (child / ADAPTER_WEIGHTS).is_file():
                entries[int(child.name)] = HistoryEntry(int(child.name), child)
    own = Path(model_dir) / ADAPTER_DIR
    generation = int(metadata.get("generation", 0))
    if generation > 0 and generation not in entries and (own / ADAPTER_WEIGHTS).is_file():
        entries[generation] = HistoryEntry(generation, own)
    return [entries[key] for key in sorted(entries)]


def write_history(model_dir: Path, previous: list[HistoryEntry], generation: int) -> list[dict[str, Any]]:
    """Copy the previous adapters and this version's `adapter/` into `adapters/`; return continuum.json's list."""
    written = []
    for entry in [*previous, HistoryEntry(generation, Path(model_dir) / ADAPTER_DIR)]:
        target = entry_dir(model_dir, entry.generation)
        shutil.copytree(entry.path, target, dirs_exist_ok=True)
        written.append(HistoryEntry(entry.generation, target).record(Path(model_dir)))
    return written
