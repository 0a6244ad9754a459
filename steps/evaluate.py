"""Evaluate step: the candidate model against the baseline on held-out data and benchmark suites.

For each model (candidate, then baseline, one in memory at a time): completion-only validation
loss and perplexity on validation/*.jsonl, then greedy, batched generation on every requested
suite, scored with the suite's metrics. Writes evaluation.json (metrics with value, baseline,
delta, regression, direction; per-suite details; an informational gate) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.benchmarks import BenchmarkError, BenchmarkSuite, load_suites
from common.examples import IGNORE_INDEX, EncodedExample, ExampleError, collate, encode_example, read_examples
from common.metrics import perplexity, score
from common.model_io import materialize_model_dir, read_metadata
from common.prompting import format_prompt, template_from_metadata

INPUT_ROOT = Path("/opt/ml/processing/input")
OUTPUT_DIR = Path("/opt/ml/processing/output/evaluation")
REPORT_FILE = "evaluation.json"
EXAMPLES_PER_SUITE = 5


class EvaluationError(ValueError):
    """The evaluation cannot run as asked; the message says what to fix."""


@dataclass(frozen=True)
class ValidationExample:
    prompt: str
    completion: str


@dataclass
class LoadedModel:
    """A model, its tokenizer and the prompt template it was trained with."""

    model: Any
    tokenizer: Any
    template: str
    max_length: int
    device: Any


@dataclass(frozen=True)
class ModelResults:
    """Everything measured for one model."""

    validation_loss: float
    suite_scores: dict[str, dict[str, float]]
    suite_outputs: dict[str, list[str]]
    suite_latency_ms: dict[str, float]


# ---------------------------------------------------------------- inputs


def read_validation_examples(validation_dir: Path) -> list[ValidationExample]:
    """All examples in validation_dir/**/*.jsonl, files in sorted order; errors name file:line."""
    if not Path(validation_dir).is_dir() or not any(Path(validation_dir).rglob("*.jsonl")):
        raise EvaluationError(f"{validation_dir}: no *.jsonl validation files found")
    try:
        records = read_examples(validation_dir)
    except ExampleError as exc:
        raise EvaluationError(str(exc)) from exc
    if not records:
        raise EvaluationError(f"{validation_dir}: the validation files hold no examples")
    return [ValidationExample(prompt=r["prompt"], completion=r["completion"]) for r in records]


def load_model(path: Path, role: str, max_seq_length: int) -> LoadedModel:
    """Materialize and load the model at path (directory or model.tar.gz) for evaluation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model_dir = materialize_model_dir(path)
        template = template_from_metadata(read_metadata(model_dir))
    except (FileNotFoundError, ValueError) as exc:
        raise EvaluationError(f"{role} model: {exc}") from exc
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
    positions = getattr(model.config, "max_position_embeddings", None) or max_seq_length
    return LoadedModel(model, tokenizer, template, min(max_seq_length, positions), device)


# ---------------------------------------------------------------- measuring


def _pad_id(tokenizer: Any) -> int:
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    return 0


def tokenize_for_loss(loaded: LoadedModel, example: ValidationExample) -> EncodedExample | None:
    """Input ids and labels for one example exactly as training encodes it (prompt masked)."""
    return encode_example(loaded.tokenizer, loaded.template, example.prompt, example.completion, loaded.max_length)


def validation_loss(loaded: LoadedModel, examples: Sequence[ValidationExample], batch_size: int) -> float:
    """Mean cross-entropy over all completion tokens (prompt tokens masked), batched."""
    import torch

    encoded = [item for item in (tokenize_for_loss(loaded, example) for example in examples) if item is not None]
    total_loss, total_tokens = 0.0, 0
    pad = _pad_id(loaded.tokenizer)
    for start in range(0, len(encoded), batch_size):
        batch = {k: v.to(loaded.device) for k, v in collate(encoded[start : start + batch_size], pad).items()}
        with torch.no_grad():
            logits = loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        shifted_labels = batch["labels"][:, 1:]
        scored = shifted_labels != IGNORE_INDEX
        loss_sum = torch.nn.functional.cross_entropy(
            logits[:, :-1][scored].float(), shifted_labels[scored], reduction="sum"
        )
        total_loss += float(loss_sum)
        total_tokens += int(scored.sum())
    if total_tokens == 0:
        raise EvaluationError(
            f"no completion tokens left to score within {loaded.max_length} tokens; "
            "the validation prompts are too long (raise --max-seq-length)"
        )
    return total_loss / total_tokens


def generate(loaded: LoadedModel, prompts: Sequence[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy completions for already-templated prompts, batch_size prompts per generate call."""
    import torch
    from transformers import GenerationConfig

    tokenizer = loaded.tokenizer
    pad = _pad_id(tokenizer)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    room = max(1, loaded.max_length - max_new_tokens)
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        encoded = [tokenizer(prompt).input_ids[-room:] for prompt in prompts[start : start + batch_size]]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
        with torch.no_grad():
            generated = loaded.model.generate(
                input_ids=input_ids.to(loaded.device),
                attention_mask=mask.to(loaded.device),
                generation_config=config,
            )
        texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
        outputs.extend(text.strip() for text in texts)
    return outputs


def measure_model(
    loaded: LoadedModel,
    examples: Sequence[ValidationExample],
    suites: Sequence[BenchmarkSuite],
    max_new_tokens: int,
    batch_size: int,
) -> ModelResults:
    """Validation loss and every suite's outputs, scores and latency for one model."""
    loss = validation_loss(loaded, examples, batch_size)
    scores: dict[str, dict[str, float]] = {}
    outputs: dict[str, list[str]] = {}
    latency: dict[str, float] = {}
    for suite in suites:
        prompts = [format_prompt(loaded.template, suite.render_prompt(case)) for case in suite.cases]
        started = time.perf_counter()
        outputs[suite.name] = generate(loaded, prompts, max_new_tokens, batch_size)
        latency[suite.name] = (time.perf_counter() - started) * 1000 / len(prompts)
        targets = [case.target for case in suite.cases]
        scores[suite.name] = {m: score(m, outputs[suite.name], targets) for m in suite.spec.metrics}
    return ModelResults(loss, scores, outputs, latency)


# ---------------------------------------------------------------- report


def metric_directions(suites: Sequence[BenchmarkSuite]) -> dict[str, bool]:
    """Every metric this evaluation reports, mapped to whether higher is better."""
    directions = {"validation_loss": False, "validation_perplexity": False}
    for suite in suites:
        for metric in suite.spec.metrics:
            directions[f"{suite.name}_{metric}"] = suite.spec.higher_is_better
    return directions


def metric_entry(value: float, baseline: float | None, higher_is_better: bool) -> dict[str, Any]:
    """{value, baseline, delta = value - baseline, regression >= 0 (how much worse), direction}."""
    if baseline is None:
        delta, regression = None, 0.0
    else:
        delta = value - baseline
        regression = max(0.0, -delta if higher_is_better else delta)
    return {
        "value": value,
        "baseline": baseline,
        "delta": delta,
        "regression": regression,
        "higher_is_better": higher_is_better,
    }


def check_gate_metric(metric: str, higher_is_better: bool, directions: dict[str, bool]) -> None:
    """Fail early when the gate metric is not produced or the gate's direction contradicts it."""
    if metric not in directions:
        raise EvaluationError(
            f"gate metric {metric!r} is not produced by this evaluation; available: {', '.join(directions)}"
        )
    if directions[metric] != higher_is_better:
        wanted = "higher" if directions[metric] else "lower"
        flag = "drop --gate-lower-is-better" if directions[metric] else "pass --gate-lower-is-better"
        raise EvaluationError(f"gate metric {metric!r} is {wanted}-is-better: {flag}")


def compute_gate(
    metrics: dict[str, dict[str, Any]],
    metric: str,
    threshold: float | None,
    max_regression: float | None,
    higher_is_better: bool,
) -> dict[str, Any]:
    """The gate's verdict: value beats the threshold and regression stays within max_regression."""
    entry = metrics[metric]
    reasons: list[str] = []
    if threshold is not None:
        ok = entry["value"] >= threshold if higher_is_better else entry["value"] <= threshold
        if not ok:
            sign = ">=" if higher_is_better else "<="
            reasons.append(f"{metric} = {entry['value']:.6g} is not {sign} threshold {threshold:.6g}")
    if max_regression is not None and entry["regression"] > max_regression:
        reasons.append(
            f"{metric} regressed by {entry['regression']:.6g} vs baseline {entry['baseline']:.6g} "
            f"(max allowed {max_regression:.6g})"
        )
    return {
        "metric": metric,
        "threshold": threshold,
        "max_regression": max_regression,
        "higher_is_better": higher_is_better,
        "passed": not reasons,
        "reasons": reasons,
    }


def no_gate() -> dict[str, Any]:
    """The gate section when no --gate-metric was given: nothing checked, nothing failed."""
    return {
        "metric": None,
        "threshold": None,
        "max_regression": None,
        "higher_is_better": True,
        "passed": True,
        "reasons": [],
    }


def build_report(
    suites: Sequence[BenchmarkSuite],
    candidate: ModelResults,
    baseline: ModelResults | None,
) -> dict[str, Any]:
    """The metrics and suites sections of evaluation.json."""
    directions = metric_directions(suites)
    values: dict[str, tuple[float, float | None]] = {
        "validation_loss": (candidate.validation_loss, baseline.validation_loss if baseline else None),
        "validation_perplexity": (
            perplexity(candidate.validation_loss),
            perplexity(baseline.validation_loss) if baseline else None,
        ),
    }
    suite_sections: dict[str, Any] = {}
    for suite in suites:
        for metric in suite.spec.metrics:
            values[f"{suite.name}_{metric}"] = (
                candidate.suite_scores[suite.name][metric],
                baseline.suite_scores[suite.name][metric] if baseline else None,
            )
        suite_sections[suite.name] = _suite_section(suite, candidate, baseline)
    metrics = {name: metric_entry(value, base, directions[name]) for name, (value, base) in values.items()}
    return {"metrics": metrics, "suites": suite_sections}


def _suite_section(suite: BenchmarkSuite, candidate: ModelResults, baseline: ModelResults | None) -> dict[str, Any]:
    examples = []
    for index, case in enumerate(suite.cases[:EXAMPLES_PER_SUITE]):
        examples.append(
            {
                "id": case.id,
                "prompt": case.prompt,
                "target": case.target,
                "candidate": candidate.suite_outputs[suite.name][index],
                "baseline": baseline.suite_outputs[suite.name][index] if baseline else None,
            }
        )
    return {
        "cases": len(suite.cases),
        "metrics": {
            "candidate": candidate.suite_scores[suite.name],
            "baseline": baseline.suite_scores[suite.name] if baseline else None,
        },
        "examples": examples,
        "latency_ms_per_example": {
            "candidate": candidate.suite_latency_ms[suite.name],
            "baseline": baseline.suite_latency_ms[suite.name] if baseline else None,
        },
    }


def format_table(report: dict[str, Any]) -> str:
    """A short candidate-vs-baseline table plus the gate verdict."""

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    width = max(len("metric"), *(len(name) for name in report["metrics"]))
    lines = [f"{'metric':<{width}}  {'candidate':>10}  {'baseline':>10}  {'delta':>10}  better"]
    for name, entry in report["metrics"].items():
        delta = "-" if entry["delta"] is None else f"{entry['delta']:+.4f}"
        better = "higher" if entry["higher_is_better"] else "lower"
        lines.append(
            f"{name:<{width}}  {number(entry['value']):>10}  {number(entry['baseline']):>10}  {delta:>10}  {better}"
        )
    gate = report["gate"]
    if gate["metric"] is None:
        lines.append("gate: not configured (no --gate-metric)")
        return "\n".join(lines)
    sign = ">=" if gate["higher_is_better"] else "<="
    threshold = "not checked" if gate["threshold"] is None else f"{sign} {gate['threshold']}"
    regression = "not checked" if gate["max_regression"] is None else f"<= {gate['max_regression']}"
    verdict = "PASSED" if gate["passed"] else "FAILED: " + "; ".join(gate["reasons"])
    lines.append(f"gate {gate['metric']} (threshold {threshold}, regression {regression}): {verdict}")
    return "\n".join(lines)


# ---------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class EvaluationSettings:
    """What to evaluate, where to write it and how to gate (the parsed command line)."""

    model_dir: Path
    baseline_dir: Path | None
    validation_dir: Path
    benchmarks_dir: Path
    suites: list[str] | None
    max_new_tokens: int
    batch_size: int
    max_seq_length: int
    output_dir: Path
    gate_metric: str | None
    gate_threshold: float | None
    gate_max_regression: float | None
    gate_higher_is_better: bool


def run_evaluation(settings: EvaluationSettings) -> dict[str, Any]:
    """Evaluate candidate and baseline, returning the full evaluation.json document."""
    suites = load_suites(settings.benchmarks_dir, settings.suites)
    if settings.gate_metric is not None:
        check_gate_metric(settings.gate_metric, settings.gate_higher_is_better, metric_directions(suites))
    examples = read_validation_examples(settings.validation_dir)

    def measure(path: Path, role: str) -> ModelResults:
        loaded = load_model(path, role, settings.max_seq_length)  # freed on return: one model at a time
        return measure_model(loaded, examples, suites, settings.max_new_tokens, settings.batch_size)

    candidate = measure(settings.model_dir, "candidate")
    baseline = measure(settings.baseline_dir, "baseline") if settings.baseline_dir else None
    report = build_report(suites, candidate, baseline)
    if settings.gate_metric is None:
        report["gate"] = no_gate()
    else:
        report["gate"] = compute_gate(
            report["metrics"],
            settings.gate_metric,
            settings.gate_threshold,
            settings.gate_max_regression,
            settings.gate_higher_is_better,
        )
    return report


def write_report(report: dict[str, Any], output_dir: Path) -> Path:
    """Write evaluation.json into output_dir and return its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / REPORT_FILE
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def _optional_float(text: str) -> float | None:
    """A gate bound: a number, or '' / 'none' for no bound."""
    if text.strip().lower() in ("", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}")
    return value


def parse_args(argv: list[str] | None) -> EvaluationSettings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=INPUT_ROOT / "model", help="candidate: model dir or model.tar.gz")
    parser.add_argument(
        "--baseline-dir",
        default=str(INPUT_ROOT / "baseline"),
        help="baseline: model dir or model.tar.gz; '' for no baseline",
    )
    parser.add_argument("--validation-dir", type=Path, default=INPUT_ROOT / "validation")
    parser.add_argument("--benchmarks-dir", type=Path, default=INPUT_ROOT / "benchmarks")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    parser.add_argument("--suites", default="", help="comma-separated suite names (default: all found)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per forward/generate call")
    parser.add_argument("--max-seq-length", type=int, default=1024)
    parser.add_argument("--gate-metric", default=None, help="metric to gate on (default: no gate)")
    parser.add_argument("--gate-threshold", type=_optional_float, default=None, help="absolute bar (default: none)")
    parser.add_argument(
        "--gate-max-regression", type=_optional_float, default=None, help="allowed worsening vs baseline (default: none)"
    )
    parser.add_argument("--gate-lower-is-better", action="store_true", help="the gate metric is lower-is-better")
    args = parser.parse_args(argv)
    for name in ("max_new_tokens", "batch_size", "max_seq_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.gate_metric is None and (args.gate_threshold is not None or args.gate_max_regression is not None):
        parser.error("--gate-threshold and --gate-max-regression need --gate-metric")
    suites = [name.strip() for name in args.suites.split(",") if name.strip()]
    return EvaluationSettings(
        model_dir=args.model_dir,
        baseline_dir=Path(args.baseline_dir) if args.baseline_dir else None,
        validation_dir=args.validation_dir,
        benchmarks_dir=args.benchmarks_dir,
        suites=suites or None,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        max_seq_length=args.max_seq_length,
        output_dir=args.output_dir,
        gate_metric=args.gate_metric,
        gate_threshold=args.gate_threshold,
        gate_max_regression=args.gate_max_regression,
        gate_higher_is_better=not args.gate_lower_is_better,
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    try:
        report = run_evaluation(settings)
    except (EvaluationError, BenchmarkError) as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    path = write_report(report, settings.output_dir)
    print(format_table(report))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
