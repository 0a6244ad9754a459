"""A second company through the whole loop: init → round 1 → round 2 per strategy, on Tidewater Ferries.

Runs what a user runs (the local runtime, the real pipelines): `continuum init` on round 1's export
(one phrasing per fact: a CSV FAQ and a JSONL schedule), the training pipeline on it, approval,
then round 2 — a delta export of new and changed facts only — once per strategy, each from the
same approved version 1. Three measurement suites are added to the project's own suite so every
evaluation.json reports, for the candidate and for version 1:
- ferry_unchanged: round-1 facts round 2 leaves alone (what the model must keep);
- ferry_changed: the 8 changed facts with their NEW answers (and, from the candidate's answers in
  cases.jsonl, the share that still gives the OLD answer: `old`);
- ferry_new: the facts round 2 adds.
Prints, per round: pipeline status, the gate's forgetting figure and verdict, exact match per
suite, wall time and training time.

    python bench/company_rounds.py                          # default strategy and naive, ~2 min on 2 cores
    python bench/company_rounds.py --strategies replay,ewc naive replay --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

import yaml  # noqa: E402

import ferry_company  # noqa: E402
from pipelines.backend import local_backend  # noqa: E402
from pipelines.commands.init import init_project  # noqa: E402
from pipelines.config import Config, load_config  # noqa: E402
from pipelines.execution import RunOutcome, run_pipeline  # noqa: E402
from pipelines.registry_ops import list_versions, set_approval  # noqa: E402
from pipelines.staging import stage_training_inputs  # noqa: E402

SUITES = ("ferry_unchanged", "ferry_changed", "ferry_new")


def write_measurement_suites(root: Path) -> Path:
    """The four measurement suites (qa, exact match and token F1) under root/measure."""
    round1 = {fact.id: fact for fact in ferry_company.facts(1)}
    round2 = ferry_company.facts(2)
    cases = {"ferry_unchanged": [(f.id, f.question, f.answer) for f in round1.values() if f.status == "stable"],
             "ferry_changed": [(f.id, f.question, f.answer) for f in round2 if f.status == "changed"],
             "ferry_new": [(f.id, f.question, f.answer) for f in round2 if f.status == "new"]}
    for name, rows in cases.items():
        folder = root / "measure" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "suite.yaml").write_text(yaml.safe_dump({
            "name": name, "task": "qa", "prompt_template": "{prompt}", "data": "cases.jsonl",
            "metrics": ["exact_match", "token_f1"], "higher_is_better": True}))
        (folder / "cases.jsonl").write_text("".join(json.dumps({"id": i, "prompt": q, "target": a}) + "\n"
                                                    for i, q, a in rows))
    return root / "measure"


def run_training(config: Config, home: Path, data: Path, parameters: dict[str, str]) -> tuple[RunOutcome, float]:
    config = config.model_copy(update={"data": config.data.model_copy(update={"source": str(data)})})
    backend = local_backend(config, home)
    started = time.monotonic()
    staged = stage_training_inputs(backend, config)
    outcome = run_pipeline("training", config, backend, {**staged.parameters(), **parameters}, echo=lambda _: None)
    return outcome, time.monotonic() - started


def evaluation_file(outcome: RunOutcome, home: Path, name: str) -> Path | None:
    """A file of the run's evaluation output, in the local S3 under the execution's id."""
    found = sorted((home / "s3").glob(f"*/*/{outcome.execution_id}/EvaluateModel/output/evaluation/{name}"))
    return found[0] if found else None


def _normalized(text: str) -> str:
    return " ".join("".join(ch.lower() if ch.isalnum() or ch in "$:." else " " for ch in text).replace(".", " ").split())


def old_answer_share(cases_file: Path | None) -> float | None:
    """Share of the changed facts the candidate still answers with the round-1 answer."""
    if cases_file is None:
        return None
    old = {fact.question: fact.answer for fact in ferry_company.facts(1) if fact.status == "changed"}
    rows = [json.loads(line) for line in cases_file.read_text().splitlines() if line.strip()]
    changed = [row for row in rows if row["suite"] == "ferry_changed"]
    hits = sum(_normalized(row["candidate"]) == _normalized(old[row["prompt"]]) for row in changed)
    return hits / len(changed) if changed else None


def step_seconds(outcome: RunOutcome, name: str) -> float | None:
    for step in outcome.steps:
        if step.get("name") == name and step.get("seconds") is not None:
            return float(step["seconds"])
    return None


def summarize(label: str, outcome: RunOutcome, seconds: float, home: Path) -> dict[str, Any]:
    found = evaluation_file(outcome, home, "evaluation.json")
    evaluation = json.loads(found.read_text()) if found else {}
    metrics = evaluation.get("metrics", {})
    row: dict[str, Any] = {"round": label, "status": outcome.status, "seconds": round(seconds, 1),
                           "train_seconds": step_seconds(outcome, "TrainModel"),
                           "failure": (outcome.failure_reason or "")[-600:]}
    for suite in SUITES:
        entry = metrics.get(f"{suite}_exact_match", {})
        row[suite] = entry.get("value")
        row[f"{suite}_v1"] = entry.get("baseline")
    row["old"] = old_answer_share(evaluation_file(outcome, home, "cases.jsonl"))
    row["forgetting"] = metrics.get("forgetting", {}).get("value")
    row["gate"] = evaluation.get("gate", {})
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--strategies", nargs="+", default=["replay,ewc", "naive"],
                        help="round-2 TrainingStrategy values (each from the same version 1)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    with tempfile.TemporaryDirectory(prefix="company-rounds-") as tmp:
        root, home = Path(tmp), Path(tmp) / "home"
        ferry_company.write_round(1, root / "round-1")
        ferry_company.write_round(2, root / "round-2")
        started = time.monotonic()
        config_file = init_project(root / "tidewater", [str(root / "round-1")], None, None, 0.5,
                                   backend_client=lambda: None, echo=lambda _: None)
        init_seconds = time.monotonic() - started
        raw = yaml.safe_load(config_file.read_text())
        raw["evaluation"]["suites"].append(str(write_measurement_suites(root)))
        config_file.write_text(yaml.safe_dump(raw, sort_keys=False))
        config = load_config(config_file)
        rows = []
        outcome, seconds = run_training(config, home, root / "round-1", {})
        rows.append(summarize("1", outcome, seconds, home))
        if not outcome.succeeded:
            print(json.dumps(rows, indent=2))
            return 1
        sagemaker = local_backend(config, home).client("sagemaker")
        group = config.model.model_package_group
        set_approval(sagemaker, list_versions(sagemaker, group)[0].arn, "Approved", "bench: version 1")
        for strategy in args.strategies:
            outcome, seconds = run_training(config, home, root / "round-2", {"TrainingStrategy": strategy})
            rows.append(summarize(f"2 ({strategy})", outcome, seconds, home))
    print(f"init: {init_seconds:.1f} s (prepare sample, suite, tiny base model)")
    header = f"{'round':<16}{'status':<11}{'wall s':>7}{'train s':>8}{'forget':>8}" + "".join(
        f"{suite.removeprefix('ferry_'):>11}" for suite in SUITES) + f"{'old':>6}"
    print(header)
    for row in rows:
        forgetting = "-" if row["forgetting"] is None else f"{row['forgetting']:.3f}"
        train_s = "-" if row["train_seconds"] is None else f"{row['train_seconds']:.1f}"
        print(f"{row['round']:<16}{row['status']:<11}{row['seconds']:>7.1f}{train_s:>8}{forgetting:>8}" + "".join(
            f"{'-' if row[s] is None else format(row[s], '.3f'):>11}" for s in SUITES)
              + f"{'-' if row['old'] is None else format(row['old'], '.3f'):>6}")
    for row in rows:
        if row["failure"]:
            print(f"round {row['round']}: {row['failure']}")
    print("exact match per suite; old: share of changed facts still answered with the round-1 answer; forget: "
          "share of version 1's known items the candidate got wrong (the MaxForgetting gate)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
