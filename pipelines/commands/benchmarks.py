"""`continuum benchmarks validate PATH`: check a benchmark suite before it gates anything.

PATH is a suite folder (suite.yaml + data), a folder of suites or an s3:// prefix of them. The
check runs the evaluate step's own code (steps/evaluate.py, as a subprocess like every step):
schema and data first, then every suite against a reference model (--model; default: the
configured base model when it is a local folder, else the tiny demo model), and prints each
suite's cases, scores and latency with the report it wrote. --no-run stops after the schema check.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import Config, load_config
from pipelines.paths import STEPS_DIR


def reference_model(args: argparse.Namespace, config: Config) -> Path:
    """--model, else the configured base model when it is a local folder, else the tiny demo model."""
    if args.model:
        return Path(args.model)
    base = config.model.base_model
    if base and Path(base).expanduser().is_dir():
        return Path(base).expanduser()
    if base:
        raise SystemExit(f"benchmarks validate: model.base_model {base!r} is not a local folder; pass --model DIR")
    from pipelines.demo.tiny_model import tiny_base_model_builder

    backend = backend_for(args, config)
    assert backend.home is not None
    return tiny_base_model_builder(backend.home)()


def _evaluate(arguments: list[str]) -> int:
    """Run steps/evaluate.py the way a processing job does: from the steps folder, output streamed."""
    return subprocess.run([sys.executable, "evaluate.py", *arguments], cwd=STEPS_DIR, check=False).returncode


def _summary(evaluation: dict) -> list[str]:
    lines = []
    for name, section in evaluation["suites"].items():
        primary = section["primary_metric"]
        value = section["metrics"]["candidate"].get(primary) if primary else None
        score = f"{primary} {value:.4f}" if value is not None else "no metric"
        warning = f"; {section['truncated_cases']} prompt(s) cut to fit the model's context" if section["truncated_cases"] else ""
        lines.append(f"  {name}: {section['cases']} cases, {score}, "
                     f"{section['latency_ms_per_example']['candidate']:.1f} ms/case{warning}")
    return lines


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with tempfile.TemporaryDirectory(prefix="continuum-benchmarks-") as tmp:
        suites_dir = Path(args.path)
        if args.path.startswith("s3://"):
            from pipelines.s3_transfer import download_prefix

            suites_dir = download_prefix(backend_for(args, config).client("s3"), args.path, Path(tmp) / "suites")
        elif not suites_dir.exists():
            print(f"benchmarks validate: {suites_dir} does not exist")
            return 2
        output = Path(args.output_dir) if args.output_dir else Path(tmp) / "out"
        common = ["--benchmarks-dir", str(suites_dir.resolve()), "--validation-dir", "", "--baseline-dir", "",
                  "--retention-max-cases", "0", "--output-dir", str(output.resolve())]
        if args.no_run:
            if _evaluate([*common, "--check-suites-only"]) != 0:
                return 2
            print("benchmarks validate: schema and data OK (not run: --no-run)")
            return 0
        model = reference_model(args, config)  # evaluate.py checks every suite before it loads the model
        if _evaluate([*common, "--model-dir", str(model.resolve()), "--max-new-tokens", str(args.max_new_tokens)]) != 0:
            return 2
        evaluation = json.loads((output / "evaluation.json").read_text(encoding="utf-8"))
        print(f"benchmarks validate: every suite loads and runs on {model}")
        print("\n".join(_summary(evaluation)))
        if args.output_dir:
            print(f"report: {output / 'report.html'}")
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("benchmarks", cmd_validate, "check benchmark suites: schema, data, a run on a reference model")
    actions = parser.add_subparsers(dest="action", required=True)
    validate = actions.add_parser("validate", help="validate a suite folder, a folder of suites or an s3:// prefix")
    validate.add_argument("path", help="suite folder, folder of suites, or s3:// prefix")
    validate.add_argument("--model", help="reference model folder (default: base model or the tiny demo model)")
    validate.add_argument("--no-run", action="store_true", help="only check schema and data")
    validate.add_argument("--max-new-tokens", type=int, default=32)
    validate.add_argument("--output-dir", help="keep evaluation.json and report.html here")
    validate.add_argument("--config", help="config YAML (default: the embedded default)")
    add_target(validate)
