"""Checkpoints in /opt/ml/checkpoints (SageMaker syncs the folder with CheckpointConfig.S3Uri) and SIGTERM.

A checkpoint is a folder `step-<N>/` holding the adapter (`trainable.safetensors`), the optimizer,
scheduler and RNG states (`state.pt`, read with weights_only=True) and, written last,
`checkpoint.json` (step, logs, run fingerprint, sha256 of each file). Only a checkpoint whose
files match its manifest is resumed (an interrupted S3 upload leaves an incomplete one behind),
and only by the run that wrote it (same fingerprint: hyperparameters, data, starting model).
SIGTERM (SageMaker's stop or spot interruption, 120 s before the kill) makes the loop save at the
end of the current step and exit with 143.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "checkpoint.json"
TRAINABLE_FILE = "trainable.safetensors"
STATE_FILE = "state.pt"
PREFIX = "step-"
INTERRUPTED_EXIT_CODE = 143  # 128 + SIGTERM


class TrainingInterrupted(Exception):
    """Training stopped on SIGTERM after saving a checkpoint (or before any step ran)."""


class CheckpointMismatch(ValueError):
    """The checkpoint folder holds another run's checkpoint."""


class StopSignal:
    """Turns SIGTERM into a flag the training loop checks after every step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def install(self) -> StopSignal:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        print("SIGTERM received: checkpointing at the end of this step", flush=True)
        self.requested = True


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(parts: dict[str, Any]) -> str:
    """A stable hash of what defines a run (JSON of `parts`, keys sorted)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:32]


def data_digest(paths: list[Path]) -> str:
    """sha256 over the given files' names and contents (the training data's identity)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8"))
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def model_identity(source: str, model_dir: Path | None) -> dict[str, Any]:
    """The starting model's identity without hashing its weights: source, config, weight file sizes."""
    if model_dir is None:
        return {"source": source}
    config = (model_dir / "config.json").read_text(encoding="utf-8") if (model_dir / "config.json").is_file() else ""
    weights = sorted((p.name, p.stat().st_size) for p in model_dir.glob("*.safetensors"))
    return {"config": hashlib.sha256(config.encode("utf-8")).hexdigest(), "weights": weights}


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    step: int
    trainable: dict[str, Any]
    state: dict[str, Any]
    logs: dict[str, Any]
    path: Path


class CheckpointManager:
    """Save, find and prune the checkpoints of one run in `root`."""

    def __init__(self, root: Path, run_fingerprint: str, keep: int = 2) -> None:
        self.root = Path(root)
        self.run_fingerprint = run_fingerprint
        self.keep = keep

    def save(self, step: int, trainable: dict[str, Any], state: dict[str, Any], logs: dict[str, Any]) -> Path:
        """Write step-<N>/ atomically (temp folder, then rename), then drop all but the newest `keep`."""
        import torch
        from safetensors.torch import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"{PREFIX}{step:08d}"
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=self.root))
        try:
            save_file({k: v.contiguous() for k, v in trainable.items()}, str(staging / TRAINABLE_FILE))
            torch.save(state, staging / STATE_FILE)
            manifest = {
                "step": step,
                "fingerprint": self.run_fingerprint,
                "logs": logs,
                "files": {name: sha256_file(staging / name) for name in (TRAINABLE_FILE, STATE_FILE)},
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._prune()
        return final

    def _candidates(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
        return sorted(found, key=lambda p: int(p.name[len(PREFIX):]), reverse=True)

    def _prune(self) -> None:
        for stale in self._candidates()[self.keep:]:
            shutil.rmtree(stale, ignore_errors=True)

    def _verified_manifest(self, folder: Path) -> dict[str, Any] | None:
        """The manifest when every file it lists is present with the recorded hash, else None."""
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            files = manifest["files"]
            if all((folder / name).is_file() and sha256_file(folder / name) == digest for name, digest in files.items()):
                return manifest
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return None

    def latest(self, log: Any = print) -> Checkpoint | None:
        """The newest complete checkpoint of this run; None if there is none. Another run's is an error."""
        import torch
        from safetensors.torch import load_file

        for folder in self._candidates():
            manifest = self._verified_manifest(folder)
            if manifest is None:
                log(f"checkpoint {folder.name} is incomplete or corrupt; trying an older one")
                continue
            if manifest.get("fingerprint") != self.run_fingerprint:
                raise CheckpointMismatch(
                    f"{folder}: written by a different run (its hyperparameters, data or starting model differ); "
                    "remove the checkpoint folder or point the job at a new checkpoint location"
                )
            state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
            return Checkpoint(int(manifest["step"]), load_file(str(folder / TRAINABLE_FILE)), state,
                              manifest.get("logs", {}), folder)
        return None


def rng_state() -> dict[str, Any]:
    """Python and torch (CPU and CUDA) RNG states."""
    import random

    import torch

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    import random

    import torch

    python_state = state["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
