"""steps/prepare.py's arguments from its contract (steps/prepare/contract.py) and the config: one list for the
pipeline's PrepareData job and for `continuum prepare` / `continuum init`, which run the script on this machine."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pipelines.config import Config
from pipelines.paths import STEPS_DIR
from pipelines.step_contracts import config_argv


def data_arguments(config: Config, values: dict[str, Any] | None = None) -> list[str]:
    """steps/prepare.py's arguments, in its contract's order: `values` (argument name → value: folders, pipeline
    parameters) where given, else the config's data settings (max_tokens: else training.max_seq_length)."""
    return config_argv("prepare", config, values)


def step_command(inputs: list[Path], out: Path, config: Config, replay: Path | None, tokenizer: Path | None,
                 workers: int) -> list[str]:
    folders = {"input_dir": [path.resolve() for path in inputs], "output_dir": out.resolve(),
               "replay_dir": replay and replay.resolve(), "tokenizer_dir": tokenizer and tokenizer.resolve()}
    return [sys.executable, str(STEPS_DIR / "prepare.py"), *data_arguments(config, {**folders, "workers": workers})]
