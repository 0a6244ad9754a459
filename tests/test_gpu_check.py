"""bench/gpu_check.sh --tiny: every check of the GPU check runs end to end on a CPU, in well under a minute."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_tiny_runs_end_to_end_on_cpu(tmp_path: Path) -> None:
    environment = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    started = time.monotonic()
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--tiny"], cwd=REPO_ROOT, env=environment,
                            capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    rows = {check: (status, numbers) for check, status, numbers in summary["rows"]}
    assert rows["train (0.5B check) qwen2.5-tiny ours"][0] == "ok"
    assert rows["train (0.5B check) qwen2.5-tiny hf-baseline"][0] == "ok"
    assert rows["qlora qwen2.5-tiny (full-precision base)"][0] == "PASSED"
    assert "same answers 102/102" in rows["eval (cpu)"][1]
    assert rows["packing (cpu float32, sdpa)"][0] == "PASSED"
    if "cuda" not in summary["card"].lower() and summary["card"].startswith("CPU"):
        assert rows["qlora qwen2.5-tiny NF4"] == ("skipped", "skipped: needs CUDA")
    for name in ("train_small", "train_large", "qlora", "eval", "packing"):
        assert (tmp_path / "out" / f"{name}.log").is_file() and (tmp_path / "out" / f"{name}.json").is_file()
    assert "gpu_check summary" in result.stdout
    print(f"gpu_check.sh --tiny: {seconds:.1f}s")
