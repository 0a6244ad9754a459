"""Where the repository's step code, serving code and benchmark suites live."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS_DIR = REPO_ROOT / "steps"
SERVING_DIR = REPO_ROOT / "containers" / "serving"
BENCHMARKS_DIR = REPO_ROOT / "benchmarks"
