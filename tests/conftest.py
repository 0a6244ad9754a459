"""Shared fixtures: the steps/ folder on sys.path, an isolated CONTINUUM_HOME, a tiny model, the demo's two rounds."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from demo_homes import DemoSnapshot

    from pipelines.backend import Backend

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS_DIR = REPO_ROOT / "steps"
if str(STEPS_DIR) not in sys.path:
    sys.path.insert(0, str(STEPS_DIR))

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
# Every local run's AWS calls land in <home>/aws-calls.jsonl: test_permissions_observed.py checks the e2e runs' calls
# against the project stack's IAM policies (infra/template.yaml) without a run of its own.
os.environ.setdefault("CONTINUUM_RECORD_AWS_CALLS", "1")


def _tiny_train_args() -> list[str]:
    from pipelines.commands.init import TINY_MODEL_TRAINING
    from pipelines.step_contracts import config_argv

    return config_argv("train", {"training": TINY_MODEL_TRAINING})


# train.py's defaults are for real models; the tests train the tiny model with `continuum init`'s tiny-model
# recipe (LoRA r 32, alpha 64, learning rate 3e-3, 20 epochs, max_seq_length 256), passed as arguments.
TINY_TRAIN_ARGS = _tiny_train_args()


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


@pytest.fixture(scope="session")
def prepared_rounds(sample_round_dirs: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Both demo rounds through the prepare step (round 2 replays round 1's train split): `train/`,
    `validation/`, `report/` folders per round."""
    import prepare

    root = tmp_path_factory.mktemp("prepared-rounds")
    prepare.prepare(sample_round_dirs[1], root / "round1", validation_fraction=0.1, seed=42)
    prepare.prepare(sample_round_dirs[2], root / "round2", replay_dir=root / "round1" / "train",
                    validation_fraction=0.1, seed=42)
    return {1: root / "round1", 2: root / "round2"}


@pytest.fixture(scope="session")
def trained_round1(tiny_model_dir: Path, prepared_rounds: dict[int, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> dict:
    """train.py with the tiny-model recipe (TINY_TRAIN_ARGS) on prepared round 1, run once per session:
    {"code": exit code, "dir": model dir, "log": stdout, "seconds": wall time}."""
    import contextlib
    import io
    import time

    import train

    model_dir = tmp_path_factory.mktemp("trained-round1")
    split = prepared_rounds[1]
    argv = ["--train-dir", str(split / "train"), "--validation-dir", str(split / "validation"),
            "--report-dir", str(split / "report"), "--base-model-dir", str(tmp_path_factory.mktemp("empty-channel")),
            "--base_model", str(tiny_model_dir), "--model-dir", str(model_dir), *TINY_TRAIN_ARGS]
    stream = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(stream):
        code = train.main(argv)
    return {"code": code, "dir": model_dir, "log": stream.getvalue(), "seconds": time.monotonic() - started}


@pytest.fixture(scope="module")
def moto_backend() -> Iterator[Backend]:
    """An AWS backend on moto (per test module) with the default config's bucket, for building definitions."""
    import boto3
    from moto import mock_aws

    from pipelines.backend import Backend
    from pipelines.config import load_config

    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=load_config().project.bucket)
        yield Backend("aws", session)


@pytest.fixture(scope="session")
def demo_rounds(tmp_path_factory: pytest.TempPathFactory) -> dict[int, DemoSnapshot]:
    """The demo's rounds 1 and 2 run once per session (tests/demo_homes.py): {round: snapshot of the home after it};
    a module that uses a demo home takes its own copy (`snapshot.copy_to(folder)`), so their changes never meet."""
    from demo_homes import build_demo_rounds

    return build_demo_rounds(tmp_path_factory.mktemp("demo-rounds"))
