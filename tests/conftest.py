"""Shared fixtures: the steps/ folder on sys.path, an isolated CONTINUUM_HOME, a tiny model."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS_DIR = REPO_ROOT / "steps"
if str(STEPS_DIR) not in sys.path:
    sys.path.insert(0, str(STEPS_DIR))

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


@pytest.fixture()
def continuum_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh local home (local S3, registry, endpoints) for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("CONTINUUM_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def sample_round_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The two rounds of the demo company's data, written once per session."""
    from pipelines.demo.sample_data import write_round

    root = tmp_path_factory.mktemp("sample-data")
    out: dict[int, Path] = {}
    for round_no in (1, 2):
        out[round_no] = root / f"round{round_no}"
        write_round(round_no, out[round_no])
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama-style base model + tokenizer trained on the sample corpus (built once)."""
    from pipelines.demo.sample_data import corpus_texts
    from pipelines.demo.tiny_model import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-model")
    return build_tiny_model(out, corpus_texts(), seed=0)
