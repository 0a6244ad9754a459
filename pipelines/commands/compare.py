"""`continuum compare A B`: the project's benchmark suites on two registered versions, side by side.

Runs what the pipeline's EvaluateModel step runs — steps/evaluate.py, as a subprocess from the
steps folder — with version A as the candidate and B as the baseline, on every suite staged at
the project's benchmarks prefix (where the CLI stages evaluation.suites for both pipelines; --suites
picks some), plus the configured lm-eval tasks, on this machine. Both
artifacts come from the Model Registry whatever their approval status, through the same cache as
`continuum try`. Prints one row per suite metric (A, B, delta, better/worse) and where the full
evaluation.json, cases.jsonl and report.html went. No gate is applied and no held-out split is read.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pipelines import s3_layout
from pipelines.backend import Backend
from pipelines.cli_support import add_target, backend_for, local_home
from pipelines.config import Config, load_config
from pipelines.paths import STEPS_DIR

EVALUATION_FILE = "evaluation.json"
LOG_FILE = "evaluate.log"
SAME = 1e-12


def staged_suites(suites_dir: Path) -> list[str]:
    """The suite folders (suite.yaml) at the top of the downloaded prefix."""
    return sorted(p.parent.name for p in suites_dir.glob("*/suite.yaml"))


def verdict(entry: dict[str, Any]) -> str:
    """better / worse / same for A against B, by the metric's direction."""
    delta = entry.get("delta")
    if delta is None:
        return ""
    if abs(delta) <= SAME:
        return "same"
    return "better" if (delta > 0) == bool(entry.get("higher_is_better", True)) else "worse"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _delta(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"


def comparison_table(evaluation: dict[str, Any], label_a: str, label_b: str) -> list[str]:
    """One row per suite metric: suite, metric, A, B, delta, verdict; then each suite's right/wrong flips."""
    rows = [("suite", "metric", label_a, label_b, "delta", "")]
    for name, entry in evaluation["metrics"].items():
        suite = entry.get("suite") or name
        metric = entry.get("metric") or name
        rows.append((suite, metric, _number(entry["value"]), _number(entry.get("baseline")), _delta(entry.get("delta")),
                     verdict(entry)))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = []
    previous = None
    for index, row in enumerate(rows):
        shown = ("", *row[1:]) if index > 1 and row[0] == previous else row
        previous = row[0]
        lines.append("  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in
                               enumerate(shown[:5])) + ("  " + shown[5] if shown[5] else ""))
    for name, section in evaluation.get("suites", {}).items():
        flips = section.get("forgetting")
        if flips:
            lines.append(f"{name}: {section['cases']} cases; right in both {flips['kept']}, only {label_a} "
                         f"{flips['learned']}, only {label_b} {flips['forgotten']}, neither {flips['still_wrong']}")
    return lines


def run_evaluate(model_a: Path, model_b: Path, suites_dir: Path, suites: list[str] | None, config: Config,
                 output_dir: Path) -> subprocess.CompletedProcess[str]:
    """steps/evaluate.py with A as the candidate and B as the baseline; its output goes to evaluate.log."""
    settings = config.evaluation
    arguments = ["--model-dir", str(model_a), "--baseline-dir", str(model_b), "--validation-dir", "",
                 "--benchmarks-dir", str(suites_dir), "--output-dir", str(output_dir),
                 "--max-new-tokens", str(settings.max_new_tokens), "--batch-size", str(settings.batch_size)]
    if suites:
        arguments += ["--suites", ",".join(suites)]
    if getattr(settings, "lm_eval_tasks", None):
        arguments += ["--lm-eval-tasks", ",".join(settings.lm_eval_tasks)]
    if getattr(settings, "lm_eval_limit", None):
        arguments += ["--lm-eval-limit", str(settings.lm_eval_limit)]
    env = {**os.environ, "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "evaluate.py", *arguments], cwd=STEPS_DIR, env=env, capture_output=True,
                          text=True, check=False)
    (output_dir / LOG_FILE).write_text(done.stdout + done.stderr, encoding="utf-8")
    return done


def _error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [f"exit code {done.returncode}"])[-1]


class CompareError(RuntimeError):
    """evaluate.py failed on the two versions; the message has its last error line and the log's path."""


def compare_versions(backend: Backend, config: Config, home: Path, a: str, b: str, suites_text: str | None = None,
                     output_dir: str | Path | None = None,
                     echo: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
                     ) -> tuple[dict[str, Any], Path, str, str]:
    """Both versions on the staged suites (evaluate.py, A as the candidate): (evaluation, output folder, label A,
    label B). Raises LookupError / FileNotFoundError / ValueError / ArtifactError before running, CompareError
    when evaluate.py fails."""
    from pipelines.model_artifacts import cache_root, materialize, resolve_version
    from pipelines.s3_transfer import download_prefix

    versions = [resolve_version(backend, config.model.model_package_group, text) for text in (a, b)]
    if versions[0].version == versions[1].version:
        raise ValueError(f"A and B are the same version ({versions[0].version})")
    models = [materialize(backend, v.model_data_url, cache_root(home))[0] for v in versions]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    output = Path(output_dir or home / "compare" / f"v{versions[0].version}-vs-v{versions[1].version}-{stamp}")
    output = output.expanduser().resolve()
    output.mkdir(parents=True, exist_ok=True)
    suites_uri = s3_layout.benchmarks_uri(config)
    try:
        suites_dir = download_prefix(backend.client("s3"), suites_uri, output / "suites")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no benchmark suites staged at {suites_uri} (a training run stages them)") from exc
    available = staged_suites(suites_dir)
    suites = [name.strip() for name in suites_text.split(",") if name.strip()] if suites_text else None
    unknown = sorted(set(suites or []) - set(available))
    if unknown:
        raise LookupError(f"no staged suite named {', '.join(unknown)} at {suites_uri} (staged: {', '.join(available)})")
    label_a, label_b = (f"v{v.version} ({v.approval_status})" for v in versions)
    echo(f"comparing A = {label_a} with B = {label_b} on {', '.join(suites or available)} ...")
    done = run_evaluate(models[0], models[1], suites_dir, suites, config, output)
    evaluation_path = output / EVALUATION_FILE
    if done.returncode != 0 or not evaluation_path.is_file():
        raise CompareError(f"evaluate.py failed: {_error_line(done)} (log: {output / LOG_FILE})")
    return json.loads(evaluation_path.read_text(encoding="utf-8")), output, label_a, label_b


def cmd_compare(args: argparse.Namespace) -> int:
    from pipelines.model_artifacts import ArtifactError

    config = load_config(args.config)
    backend = backend_for(args, config)
    started = time.perf_counter()
    try:
        evaluation, output, label_a, label_b = compare_versions(backend, config, local_home(args), args.a, args.b,
                                                                args.suites, args.output_dir)
    except (LookupError, FileNotFoundError, ValueError, ArtifactError, CompareError) as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 1
    print("\n".join(comparison_table(evaluation, label_a, label_b)))
    print(f"evaluation: {output / EVALUATION_FILE}")
    print(f"report: {output / evaluation.get('report', 'report.html')}")
    print(f"cases: {output / 'cases.jsonl'}")
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("compare", cmd_compare,
                         "run the benchmark suites on two registered versions (any approval status) side by side")
    parser.add_argument("a", metavar="A", help="version number (3 or v3) or 'latest'")
    parser.add_argument("b", metavar="B", help="version to compare against (the baseline column)")
    parser.add_argument("--suites", help="comma-separated names of staged suites (default: every staged suite)")
    parser.add_argument("--output-dir", help="where evaluation.json, cases.jsonl and report.html go "
                                             "(default: <home>/compare/vA-vs-vB-<time>)")
    add_target(parser)
