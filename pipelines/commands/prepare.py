"""`continuum prepare PATH... [--out DIR] [--config FILE]`: the prepare step alone, on local files or S3 prefixes.

Runs `steps/prepare.py` — the script the pipeline's PrepareData job runs — as a subprocess with
the arguments the pipeline gives it (from the config's `data` section), prints its summary with
a sample of the processed examples, and leaves report.json and quarantine.jsonl under DIR/report.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import Config, load_config
from pipelines.paths import STEPS_DIR
from pipelines.s3_transfer import download_prefix
from pipelines.training.prepare_arguments import step_command


def default_tokenizer(config: Config, home: Path | None) -> Path | None:
    """The configured base model when it is a local folder, else the demo's tiny model if it was built."""
    from pipelines.demo.tiny_model import tiny_base_dir
    from pipelines.local.home import DEFAULT_HOME, HOME_ENV

    if config.model.base_model:
        local = Path(config.model.base_model).expanduser()
        return local if local.is_dir() else None
    tiny = tiny_base_dir(home or Path(os.environ.get(HOME_ENV) or DEFAULT_HOME))
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
