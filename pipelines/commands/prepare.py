"""`continuum prepare PATH... [--out DIR] [--config FILE]`: the prepare step alone, on local files or S3 prefixes.

Runs `steps/prepare.py` — the script the pipeline's PrepareData job runs — as a subprocess with
the arguments the pipeline gives it (from the config's `data` section), prints its summary with
a sample of the processed examples, and leaves report.json and quarantine.jsonl under DIR/report.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import Config, load_config
from pipelines.paths import STEPS_DIR
from pipelines.staging import download_prefix


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


def default_tokenizer(config: Config, home: Path | None) -> Path | None:
    """The configured base model when it is a local folder, else the demo's tiny model if it was built."""
    from pipelines.local.home import DEFAULT_HOME, HOME_ENV

    if config.model.base_model:
        local = Path(config.model.base_model).expanduser()
        return local if local.is_dir() else None
    tiny = (home or Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)) / "models" / "tiny-base"
    return tiny if tiny.is_dir() else None


def cmd_prepare(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    tokenizer = args.tokenizer or default_tokenizer(config, Path(args.home) if args.home else None)
    with tempfile.TemporaryDirectory(prefix="continuum-prepare-") as tmp:
        inputs: list[Path] = []
        for index, path in enumerate(args.paths):
            if path.startswith("s3://"):
                s3 = backend_for(args, config).client("s3")
                inputs.append(download_prefix(s3, path, Path(tmp) / f"s3-{index}" / Path(path.rstrip("/")).name))
            elif not Path(path).exists():
                raise FileNotFoundError(f"{path}: no such file or folder")
            else:
                inputs.append(Path(path))
        command = step_command(inputs, Path(args.out), config, args.replay, tokenizer, args.workers)
        code = subprocess.run(command, cwd=STEPS_DIR, check=False).returncode
    report_dir = Path(args.out) / "report"
    if (report_dir / "report.json").is_file():
        print(f"report: {report_dir / 'report.json'}\nquarantine: {report_dir / 'quarantine.jsonl'}")
    if code == 0:
        print(f"examples: {Path(args.out) / 'train'}, {Path(args.out) / 'validation'}, {Path(args.out) / 'test'}")
    return code


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("prepare", cmd_prepare, "run the data preparation step alone on files, folders or s3:// prefixes")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or s3:// prefixes of raw data")
    parser.add_argument("--out", default="prepared", help="output folder (default ./prepared)")
    parser.add_argument("--replay", type=Path, default=None,
                        help="a previous version's prepared train split: replayed, and compared against")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="base model folder whose tokenizer measures lengths (default: model.base_model if it "
                             "is a local folder, else the demo's tiny model when built)")
    parser.add_argument("--workers", type=int, default=0, help="scanning processes (default: one per CPU)")
    add_target(parser)
