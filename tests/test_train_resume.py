"""Interruption: SIGTERM checkpoints and exits; a restart resumes to the same adapter and loss as an uninterrupted run."""
from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import train
from train.checkpoint import INTERRUPTED_EXIT_CODE, CheckpointManager, CheckpointMismatch
from conftest import TINY_TRAIN_ARGS

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run_in_process(argv: list[str]) -> tuple[int, str]:
    stream = io.StringIO()
    with contextlib.redirect_stdout(stream):
        code = train.main(argv)
    return code, stream.getvalue()


def _adapter(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "adapter" / "adapter_model.safetensors"))


def test_sigterm_mid_run_then_restart_matches_uninterrupted_run(
    tiny_model_dir: Path, prepared_rounds: dict[int, Path], tmp_path: Path
) -> None:
    split = prepared_rounds[1]
    _interrupt_resume_and_compare(
        [*TINY_TRAIN_ARGS, "--train-dir", str(split / "train"), "--validation-dir", str(split / "validation"),
         "--base_model", str(tiny_model_dir), "--max_steps", "80", "--fisher_samples", "8", "--seed", "7"], tmp_path)


def test_round_two_with_online_replay_and_distill_resumes_to_the_same_adapter(
    trained_round1: dict, prepared_rounds: dict[int, Path], tmp_path: Path
) -> None:
    """The default strategy (replay,ewc,distill, online replay): the replay's state (margins seen, queue, replays)
    travels in the checkpoint, so the resumed run replays what the uninterrupted one did."""
    split = prepared_rounds[2]
    reference, resumed = _interrupt_resume_and_compare(
        [*TINY_TRAIN_ARGS, "--train-dir", str(split / "train"), "--validation-dir", str(split / "validation"),
         "--base-model-dir", str(trained_round1["dir"]), "--epochs", "3", "--fisher_samples", "8", "--seed", "7"],
        tmp_path)
    assert reference["replay"]["selection"] == "online" and reference["replay"]["epoch_windows"] == 3
    for key in ("chosen", "replayed_tokens", "scored_tokens", "by_data_version", "items"):
        assert resumed["replay"][key] == reference["replay"][key], key
    assert resumed["metrics"]["distill_tokens"] == reference["metrics"]["distill_tokens"] > 0


def _interrupt_resume_and_compare(common: list[str], tmp_path: Path) -> tuple[dict, dict]:
    """Train uninterrupted; train again, SIGTERM after the first logged step, restart: same adapter and losses."""
    import torch

    code, _ = _run_in_process([*common, "--model-dir", str(tmp_path / "reference"),
                               "--checkpoint-dir", str(tmp_path / "reference-checkpoints")])
    assert code == 0

    checkpoints = tmp_path / "checkpoints"
    argv = [*common, "--model-dir", str(tmp_path / "resumed"), "--checkpoint-dir", str(checkpoints)]
    process = subprocess.Popen([sys.executable, "steps/train.py", *argv], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if "train_loss=" in line:  # the first log line (step 4 of 80)
            process.send_signal(signal.SIGTERM)
            break
    output += process.stdout.readlines()
    assert process.wait(timeout=120) == INTERRUPTED_EXIT_CODE, "".join(output[-20:])
    saved = sorted(checkpoints.glob("step-*"))
    total = json.loads((tmp_path / "reference" / "continuum.json").read_text())["metrics"]["steps"]
    assert len(saved) == 1 and 1 <= int(saved[0].name[5:]) < total, "".join(output[-20:])
    assert not (tmp_path / "resumed" / "continuum.json").exists()

    code, log = _run_in_process(argv)
    assert code == 0 and f"resumed from {saved[0]}" in log
    reference = json.loads((tmp_path / "reference" / "continuum.json").read_text())
    resumed = json.loads((tmp_path / "resumed" / "continuum.json").read_text())
    assert resumed["training"]["resumed_from_step"] == int(saved[0].name[5:])
    for name in ("train_loss", "initial_train_loss", "eval_loss", "train_tokens"):
        assert resumed["metrics"][name] == reference["metrics"][name], name
    expected, actual = _adapter(tmp_path / "reference"), _adapter(tmp_path / "resumed")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
    assert float(sum(t.abs().sum() for t in actual.values())) > 0
    return reference, resumed


def _manager(root: Path, run: str = "run-a", keep: int = 2) -> CheckpointManager:
    return CheckpointManager(root, run, keep)


def _save(manager: CheckpointManager, step: int) -> Path:
    import torch

    return manager.save(step, {"w": torch.full((2, 2), float(step))}, {"optimizer": {"step": step}}, {"first_loss": 1.0})


def test_checkpoints_prune_verify_and_refuse_another_run(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    assert manager.latest() is None
    for step in (5, 10, 15):
        _save(manager, step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000010", "step-00000015"]
    latest = manager.latest()
    assert latest is not None and latest.step == 15 and float(latest.trainable["w"][0, 0]) == 15.0
    assert latest.state == {"optimizer": {"step": 15}} and latest.logs == {"first_loss": 1.0}

    # An interrupted upload: the newest checkpoint's weights are truncated, so the one before is resumed.
    weights = tmp_path / "step-00000015" / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    messages: list[str] = []
    latest = manager.latest(messages.append)
    assert latest is not None and latest.step == 10 and "step-00000015 is incomplete" in messages[0]

    with pytest.raises(CheckpointMismatch, match="different run"):
        _manager(tmp_path, run="run-b").latest()


def test_local_training_job_syncs_checkpoints_like_sagemaker(tmp_path: Path) -> None:
    """The local runtime downloads CheckpointConfig.S3Uri before a job and uploads it after, even when it fails."""
    from pipelines.local.container import JobFailed
    from pipelines.local.jobs import JobContext, run_training_job
    from pipelines.local.s3 import LocalS3

    code = tmp_path / "code"
    code.mkdir()
    (code / "job.py").write_text(
        "import os, pathlib, sys\n"
        "progress = pathlib.Path(os.environ['SM_CHECKPOINT_DIR']) / 'progress.txt'\n"
        "count = int(progress.read_text()) + 1 if progress.exists() else 1\n"
        "progress.write_text(str(count))\n"
        "sys.exit(0 if count >= 2 else 143)\n"
    )
    with tarfile.open(tmp_path / "sourcedir.tar.gz", "w:gz") as tar:
        tar.add(code / "job.py", arcname="job.py")
    s3 = LocalS3(tmp_path / "s3")
    s3.create_bucket("bucket")
    s3.put_file("s3://bucket/code/sourcedir.tar.gz", tmp_path / "sourcedir.tar.gz")
    s3.put_bytes("s3://bucket/checkpoints/exec-10/progress.txt", b"41")  # another execution's: never read

    def request() -> dict:
        return {
            "HyperParameters": {"sagemaker_program": '"job.py"',
                                "sagemaker_submit_directory": '"s3://bucket/code/sourcedir.tar.gz"'},
            "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
            "CheckpointConfig": {"S3Uri": "s3://bucket/checkpoints/exec-1", "LocalPath": "/opt/ml/checkpoints"},
        }

    def context(attempt: int) -> JobContext:
        return JobContext(f"job-{attempt}", tmp_path / f"attempt-{attempt}", s3, {}, lambda line: None)

    with pytest.raises(JobFailed, match="exit code 143"):
        run_training_job(request(), context(1))
    assert s3.get_bytes("s3://bucket/checkpoints/exec-1/progress.txt") == b"1"
    described = run_training_job(request(), context(2))
    assert described["TrainingJobStatus"] == "Completed"
    assert s3.get_bytes("s3://bucket/checkpoints/exec-1/progress.txt") == b"2"
    assert s3.get_bytes("s3://bucket/checkpoints/exec-10/progress.txt") == b"41"
