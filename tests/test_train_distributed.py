"""Data-parallel training as SageMaker's torch_distributed launches it: torchrun, here 2 CPU processes (gloo)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import TINY_TRAIN_ARGS

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_torchrun_two_processes_train_one_model(tiny_model_dir: Path, prepared_rounds: dict[int, Path],
                                                tmp_path: Path) -> None:
    split = prepared_rounds[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "steps/train.py",
               *TINY_TRAIN_ARGS, "--train-dir", str(split / "train"), "--validation-dir", str(split / "validation"),
               "--base_model", str(tiny_model_dir), "--model-dir", str(tmp_path / "model"),
               "--checkpoint-dir", str(tmp_path / "checkpoints"), "--max_steps", "4", "--fisher_samples", "4"]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    meta = json.loads((tmp_path / "model" / "continuum.json").read_text())
    assert meta["training"]["world_size"] == 2
    # --max_steps counts optimizer steps; each of them took one batch per process.
    assert meta["metrics"]["steps"] == 4.0
    # More tokens than one process can take in 4 steps: both processes' batches are counted.
    assert meta["metrics"]["train_tokens"] > 4 * meta["training"]["tokens_per_step"]
    # Rank 0 alone logs metrics and writes the checkpoint and the model.
    assert result.stdout.count("train_loss=") == 4 and result.stdout.count("eval_loss=") == 1
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000004"]
    assert (tmp_path / "model" / "adapter" / "adapter_model.safetensors").is_file()
