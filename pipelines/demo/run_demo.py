"""`continuum demo`: one full round of the loop on this machine, on the embedded default config.

Round N (N = approved versions so far + 1, at most the sample data's last round): tiny base model
if needed → round N of the sample company data → training pipeline → approve → deploy pipeline →
a few prompts to the endpoint → summary.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipelines import s3_layout
from pipelines.backend import Backend, local_backend
from pipelines.config import Config, load_config
from pipelines.demo.tiny_model import tiny_base_model_builder
from pipelines.execution import RunOutcome, run_pipeline
from pipelines.registry_ops import ModelVersion, describe_version, list_versions, read_metrics, set_approval
from pipelines.staging import stage_training_inputs

LAST_SAMPLE_ROUND = 2


@dataclass
class DemoSummary:
    round_no: int
    training: RunOutcome
    version: ModelVersion | None = None
    previous_version: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    answers: list[dict[str, str]] = field(default_factory=list)
    evaluation_path: Path | None = None
    capture_path: Path | None = None
    deploy: RunOutcome | None = None
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return bool(self.training.succeeded and self.deploy and self.deploy.succeeded)


def demo_config(round_no: int, base: Config | None = None) -> Config:
    config = base or load_config()
    return config.model_copy(update={"data": config.data.model_copy(update={"source": f"sample://round-{round_no}"})})


def demo_prompts(round_no: int, count: int = 4) -> list[dict[str, str]]:
    """A few questions the endpoint should now answer: this round's facts first."""
    from pipelines.demo.sample_data import facts

    current = facts(round_no)
    newest = [fact for fact in current if fact.status in ("new", "changed")] or current
    picked = newest[: count // 2] + [fact for fact in facts(1) if fact.status == "stable"][: count - count // 2]
    return [{"question": fact.question, "expected": fact.answer} for fact in picked[:count]]


def run_demo(home: Path | None = None, echo: Callable[[str], None] = print,
             overrides: dict[str, Any] | None = None) -> DemoSummary:
    """One round (`overrides`: dotted config settings on top of the demo's, e.g. tracking.mlflow_uri)."""
    started = time.monotonic()
    base_config = load_config(overrides=overrides)
    backend = local_backend(base_config, home)
    assert backend.home is not None
    sagemaker = backend.client("sagemaker")
    group = base_config.model.model_package_group
    approved = list_versions(sagemaker, group, "Approved")
    round_no = min(len(approved) + 1, LAST_SAMPLE_ROUND)
    config = demo_config(round_no, base_config)
    echo(f"== continuum demo: round {round_no} (home {backend.home}) ==")
    if approved:
        echo(f"previous approved version: {approved[0].version} — training continues from it")

    echo("-- staging inputs (sample data, base model, benchmark suites) --")
    staged = stage_training_inputs(backend, config, build_demo_model=tiny_base_model_builder(backend.home))
    echo(f"data {staged.input_data_uri}\nbase model {staged.base_model_uri}")

    echo("-- training pipeline --")
    training = run_pipeline("training", config, backend, staged.parameters(), echo)
    summary = DemoSummary(round_no=round_no, training=training, previous_version=approved[0].version if approved else None)
    if training.succeeded:
        _approve_and_deploy(summary, config, backend, echo)
    summary.seconds = time.monotonic() - started
    return summary


def _approve_and_deploy(summary: DemoSummary, config: Config, backend: Backend, echo: Callable[[str], None]) -> None:
    sagemaker = backend.client("sagemaker")
    arn = next(step["model_package_arn"] for step in summary.training.steps if "model_package_arn" in step)
    set_approval(sagemaker, arn, "Approved", "approved by `continuum demo`")
    summary.version = describe_version(sagemaker, arn)
    echo(f"-- approved model version {summary.version.version} --")
    evaluation = read_metrics(backend.client("s3"), summary.version.metrics_uri)
    summary.metrics = evaluation.get("metrics", {})
    assert summary.version.metrics_uri
    summary.evaluation_path = backend.local_file(summary.version.metrics_uri)

    echo("-- deploy pipeline --")
    summary.deploy = run_pipeline("deploy", config, backend, {}, echo)
    if not summary.deploy.succeeded:
        return
    runtime = backend.client("sagemaker-runtime")
    for item in demo_prompts(summary.round_no):
        response = runtime.invoke_endpoint(
            EndpointName=config.deploy.endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps({"inputs": item["question"], "parameters": {"max_new_tokens": 24}}),
        )
        answer = json.loads(response["Body"].read())[0]["generated_text"].strip()
        summary.answers.append({**item, "answer": answer})
    summary.capture_path = backend.local_file(f"{s3_layout.data_capture_uri(config)}/{config.deploy.endpoint_name}")


def format_summary(summary: DemoSummary) -> str:
    lines = ["", "== summary =="]
    if not summary.training.succeeded:
        lines.append(f"training pipeline {summary.training.status}: {summary.training.failure_reason}")
        lines.append(f"execution folder: {summary.training.directory}")
        return "\n".join(lines)
    assert summary.version is not None
    previous = f"version {summary.previous_version}" if summary.previous_version else "the base model"
    lines.append(f"round {summary.round_no}: model version {summary.version.version} ({summary.version.approval_status}), "
                 f"data version {summary.version.metadata.get('data_version', '?')}")
    lines.append(f"metrics vs {previous}:")
    for name, metric in sorted(summary.metrics.items()):
        baseline = metric.get("baseline")
        delta = metric.get("delta")
        lines.append(
            f"  {name:<32} {metric['value']:>9.4f}  previous {baseline if baseline is None else f'{baseline:.4f}':>9}"
            f"  delta {delta if delta is None else f'{delta:+.4f}':>9}"
        )
    if summary.answers:
        lines.append("endpoint answers:")
        for item in summary.answers:
            lines.append(f"  Q: {item['question']}\n     expected: {item['expected']} | model: {item['answer']}")
    lines.append(f"evaluation report: {summary.evaluation_path}")
    lines.append(f"training execution: {summary.training.directory}")
    if summary.deploy is not None:
        lines.append(f"deploy pipeline: {summary.deploy.status}" + (
            f" ({summary.deploy.failure_reason})" if summary.deploy.failure_reason else ""))
    lines.append(f"captured traffic: {summary.capture_path}")
    lines.append(f"finished in {summary.seconds:.0f}s; run `continuum demo` again for the next round")
    return "\n".join(lines)
