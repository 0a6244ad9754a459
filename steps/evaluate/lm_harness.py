"""Standard benchmarks through lm-evaluation-harness (lm-eval), folded into our suite results.

Two ways in: a suite folder whose suite.yaml says `task: lm_eval` and whose `data` is an lm-eval
task YAML (relative `dataset_kwargs.data_files` resolve against the suite folder, so a task
over local JSONL needs no hub), or any lm-eval task name (`--lm-eval-tasks arc_easy,...`; its
dataset comes from the hub, so that needs network). Both run against the already-loaded model
(merged weights = base + adapter) through lm-eval's HFLM wrapper.
"""
from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.benchmarks import require_lm_eval
from evaluate.model import LoadedModel
from evaluate.tasks import CaseOutcome, SuiteRun

_NOT_METRICS = {"alias", "name", "sample_len", "samples"}


@dataclass(frozen=True)
class LmEvalTask:
    """One lm-eval task to run: a config dict (suite) or a registered task name, and the metrics to keep."""

    name: str
    config: dict[str, Any] | None
    metrics: tuple[str, ...] | None  # None: every metric lm-eval reports


def split_metric_key(key: str) -> tuple[str, str] | None:
    """lm-eval's "acc,none" → ("acc", "acc"); "exact_match,strict-match" → ("exact_match_strict_match",
    "exact_match"); stderr and bookkeeping keys → None. The second item is lm-eval's own metric name."""
    metric, _, filter_name = key.partition(",")
    if metric in _NOT_METRICS or metric.endswith("_stderr"):
        return None
    name = metric if filter_name in ("", "none") else f"{metric}_{filter_name}"
    return re.sub(r"[^A-Za-z0-9_]+", "_", name), metric


def _outcome(sample: dict[str, Any], primary: str | None) -> CaseOutcome:
    """A sample of lm-eval's log as a case: the prompt, the right answer and what the model answered."""
    arguments = sample.get("arguments", [])
    prompt = str(arguments[0][0]) if arguments else ""
    responses = sample.get("filtered_resps", [])
    target = sample.get("target")
    if responses and isinstance(responses[0], (tuple, list)):  # log-likelihood per option
        best = max(range(len(responses)), key=lambda i: float(responses[i][0]))
        prediction = str(arguments[best][1]).strip()
        if isinstance(target, int) and 0 <= target < len(arguments):
            target = arguments[target][1]
    else:
        prediction = str(responses[0]).strip() if responses else ""
    scores = {key: float(value) for key, value in sample.items()
              if key in sample.get("metrics", []) and isinstance(value, (int, float))}
    correct = None if primary is None or primary not in scores else scores[primary] >= 1.0
    return CaseOutcome(str(sample.get("doc_id", "")), prompt, str(target).strip(), prediction, scores, correct)


def _quiet_and_local(tasks: Sequence[LmEvalTask]) -> None:
    """No per-call warnings in the job log; with only local task data, no hub lookups."""
    if all(task.config is not None for task in tasks):
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    for name in ("lm_eval", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_lm_eval(loaded: LoadedModel, tasks: Sequence[LmEvalTask], batch_size: int, limit: int | None) -> dict[str, SuiteRun]:
    """Run the tasks on the loaded model; one SuiteRun per task, with lm-eval's metric directions."""
    if not tasks:
        return {}
    require_lm_eval()
    _quiet_and_local(tasks)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    model = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=batch_size,
                 max_length=loaded.max_length, device=str(loaded.device))
    manager = TaskManager(include_defaults=any(task.config is None for task in tasks))
    results = lm_eval.simple_evaluate(
        model=model,
        tasks=[task.config if task.config is not None else task.name for task in tasks],
        task_manager=manager,
        limit=limit,
        bootstrap_iters=0,
        log_samples=True,
    )
    if results is None:
        raise RuntimeError("lm-eval returned no results")
    seconds = time.perf_counter() - started
    return {task.name: fold_results(task, results, seconds / len(tasks)) for task in tasks}


def fold_results(task: LmEvalTask, results: dict[str, Any], seconds: float) -> SuiteRun:
    reported = results["results"].get(task.name)
    if reported is None:
        raise ValueError(f"lm-eval task {task.name!r} produced no results (a group? name its tasks instead)")
    metrics: dict[str, float] = {}
    raw_names: dict[str, str] = {}
    for key, value in reported.items():
        named = split_metric_key(key)
        if named is not None and isinstance(value, (int, float)) and not math.isnan(float(value)):
            metrics[named[0]], raw_names[named[0]] = float(value), named[1]
    if task.metrics is not None:
        missing = [name for name in task.metrics if name not in metrics]
        if missing:
            raise ValueError(f"lm-eval task {task.name!r} reports {sorted(metrics)}, not {missing}")
        metrics = {name: metrics[name] for name in task.metrics}
    directions = results.get("higher_is_better", {}).get(task.name, {})
    primary = raw_names[next(iter(metrics))] if metrics else None
    samples = sorted(results.get("samples", {}).get(task.name, []), key=lambda s: s.get("doc_id", 0))
    return SuiteRun(
        metrics=metrics,
        outcomes=tuple(_outcome(sample, primary) for sample in samples),
        seconds=seconds,
        directions={name: bool(directions.get(raw_names[name], True)) for name in metrics},
    )
