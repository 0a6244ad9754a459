"""steps/prepare.py's arguments from the config: one list for the pipeline's PrepareData job and for
`continuum prepare` / `continuum init`, which run the script on this machine."""
from __future__ import annotations

import sys
from pathlib import Path

from pipelines.config import Config
from pipelines.paths import STEPS_DIR


def data_arguments(config: Config) -> list[str]:
    """steps/prepare.py's arguments for the config's data settings (the pipeline step passes the same)."""
    data = config.data
    for value in [*data.pii_allow, *data.columns.values()]:
        if "," in value:
            raise ValueError(f"data.pii_allow / data.columns: {value!r} contains a comma, which the step's "
                             "comma-separated arguments cannot carry")
    arguments = [
        "--validation-fraction", str(data.validation_fraction),
        "--test-fraction", str(data.test_fraction),
        "--seed", str(data.seed),
        "--min-examples", str(data.min_examples),
        "--max-reject-rate", str(data.max_reject_rate),
        "--max-tokens", str(data.max_tokens or config.training.max_seq_length),
        "--max-file-mb", str(data.max_file_mb),
        "--pii", data.pii,
        "--near-duplicate-threshold", str(data.near_duplicate_threshold),
        "--holdout", data.holdout,
        "--max-changed-fraction", str(data.max_changed_fraction),
    ]
    if data.pii_allow:
        arguments += ["--pii-allow", ",".join(data.pii_allow)]
    if data.columns:
        arguments += ["--columns", ",".join(f"{field}={column}" for field, column in sorted(data.columns.items()))]
    return arguments


def step_command(inputs: list[Path], out: Path, config: Config, replay: Path | None, tokenizer: Path | None,
                 workers: int) -> list[str]:
    command = [sys.executable, str(STEPS_DIR / "prepare.py")]
    for path in inputs:
        command += ["--input-dir", str(path.resolve())]
    command += ["--output-dir", str(out.resolve()), "--replay-fraction", str(config.data.replay_fraction),
                "--retrain-min-change", str(config.data.retrain_min_change), "--workers", str(workers),
                "--allow-changes", str(config.data.allow_changes).lower(),
                *data_arguments(config)]
    if replay is not None:
        command += ["--replay-dir", str(replay.resolve())]
    if tokenizer is not None:
        command += ["--tokenizer-dir", str(tokenizer.resolve())]
    return command
