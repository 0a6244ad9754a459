"""Logs are for people: a training step prints progress and results, not per-step debug lines, library
progress bars or deprecation warnings; `--verbose` brings the debug lines back. Our forward passes use
the current transformers Cache API (no deprecated `past_key_values`)."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

from conftest import TINY_TRAIN_ARGS

REPO_ROOT = Path(__file__).resolve().parents[1]

NOISE = ("penalty", "Warning", "warnings.warn", "Loading weights", "Writing model shards", "it/s]")


def _round_two_argv(trained_round1: dict, prepared_rounds: dict[int, Path], model_dir: Path, steps: int) -> list[str]:
    """A short round 2 from the trained round-1 model with every penalty on (EWC from round 1's Fisher)."""
    split = prepared_rounds[2]
    return [*TINY_TRAIN_ARGS, "--train-dir", str(split / "train"), "--base-model-dir", str(trained_round1["dir"]),
            "--model-dir", str(model_dir), "--max_steps", str(steps), "--fisher_samples", "0",
            "--strategy", "replay,ewc,l2sp"]


def test_a_train_step_prints_progress_and_results_only(trained_round1: dict, prepared_rounds: dict[int, Path],
                                                       tmp_path: Path) -> None:
    argv = _round_two_argv(trained_round1, prepared_rounds, tmp_path / "model", steps=4)
    environment = {k: v for k, v in os.environ.items() if k != "CONTINUUM_VERBOSE"}
    result = subprocess.run([sys.executable, "steps/train.py", *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300, env=environment)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert [line for line in output.splitlines() if any(word in line for word in NOISE)] == []
    assert output.count("train_loss=") == 4 and "saved model to" in output
    assert output.count("\n") < 15, output


def test_verbose_logs_the_penalty_and_our_code_warns_nothing(trained_round1: dict, prepared_rounds: dict[int, Path],
                                                             tmp_path: Path) -> None:
    import train

    argv = [*_round_two_argv(trained_round1, prepared_rounds, tmp_path / "model", steps=2), "--verbose"]
    stream = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(stream):
        warnings.simplefilter("always")
        assert train.main(argv) == 0
    penalty_lines = [line for line in stream.getvalue().splitlines() if line.startswith("penalty ")]
    assert len(penalty_lines) == 2 and all("ewc=" in line for line in penalty_lines)
    assert [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))] == []


def test_batched_decoding_with_a_shared_prefix_uses_no_deprecated_cache_argument(tiny_model_dir: Path) -> None:
    from evaluate.forward import PrefixStore
    from evaluate.generation import greedy_decode, stop_token_ids
    from evaluate.model import load_model

    tiny = load_model(tiny_model_dir, "candidate", max_seq_length=1024)
    opening = tiny.tokenizer("### Instruction: answer the question about the company. " * 8)["input_ids"]
    rows = [opening + tiny.tokenizer(question)["input_ids"] for question in ("Who?", "What is the Rover X1?", "Hi")]
    prefixes = PrefixStore(tiny.model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        answers = greedy_decode(tiny.model, rows, 4, stop_token_ids(tiny), tiny.pad_id, prefixes)
    assert len(answers) == 3 and prefixes._known, "the shared opening was run as a prefix"
