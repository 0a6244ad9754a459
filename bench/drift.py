"""Drift check speed: `monitor.py check` over 100,000 captured records (target ≤ 10 s on 2 cores).

Writes a baseline from the demo company's questions, then 100,000 capture records in SageMaker's
format (written by the local endpoint's capture writer: JSON bodies, 24 hourly files), and times the
check twice: traffic like the training data, and shifted traffic. Prints the numbers, and exits 1
when a verdict is not the one injected: no violation on the first, drift on the second (off-topic
prompts: topic coverage; refusals: the refusal rate), with every record read.

    python bench/drift.py [--records 100000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "steps"))
sys.path.insert(0, str(REPO))

from pipelines.demo.sample_data import facts  # noqa: E402
from pipelines.local.capture import CaptureWriter, Exchange, build_capture_record  # noqa: E402
from pipelines.local.s3 import LocalS3  # noqa: E402

import monitor  # noqa: E402  (steps/monitor.py)

CAPTURE = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": "s3://bench/capture",
           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
           "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}
SHIFTED = ["How do I bake sourdough bread at home?", "Write a python function that reverses a linked list.",
           "What is the capital of Mongolia?", "Explain quantum entanglement to a child.",
           "Which club won the most football championships in Spain?", "How long should I boil an egg?"]


def write_training(folder: Path) -> list[tuple[str, str]]:
    pairs = [(fact.question, fact.answer) for round_no in (1, 2) for fact in facts(round_no)]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w", encoding="utf-8") as handle:
        for index, (prompt, completion) in enumerate(pairs):
            handle.write(json.dumps({"id": str(index), "prompt": prompt, "completion": completion, "source": "bench"}) + "\n")
    return pairs


def write_capture(root: Path, pairs: list[tuple[str, str]], records: int, shifted: bool, endpoint: str) -> None:
    rng = random.Random(7)
    writer = CaptureWriter(LocalS3(root))
    start = datetime.now(timezone.utc) - timedelta(hours=23)
    for index in range(records):
        prompt, answer = rng.choice(pairs)
        if shifted and rng.random() < 0.5:
            prompt, answer = rng.choice(SHIFTED), "I am sorry, I cannot help with that."
        body = json.dumps({"inputs": prompt, "parameters": {"max_new_tokens": 24}}).encode()
        when = start + timedelta(seconds=index * 23 * 3600 / records)
        exchange = Exchange(body, "application/json", json.dumps([{"generated_text": answer}]).encode(),
                            "application/json")
        writer.write(CAPTURE["DestinationS3Uri"], endpoint, "AllTraffic",
                     build_capture_record(CAPTURE, exchange, str(uuid.UUID(int=rng.getrandbits(128))), when), when)


def timed_check(work: Path, endpoint: str) -> tuple[float, dict]:
    capture_dir = LocalS3(work / "s3").path(f"{CAPTURE['DestinationS3Uri']}/{endpoint}")
    started = time.perf_counter()
    args = monitor.parse_args(["check", "--baseline-dir", str(work / "baseline"), "--capture-dir", str(capture_dir),
                               "--endpoint-name", endpoint, "--since-hours", "0", "--no-cloudwatch",
                               "--output-dir", str(work / f"out-{endpoint}")])
    report = monitor.run_check(args, None, datetime.now(timezone.utc))
    return time.perf_counter() - started, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="continuum-drift-bench-"))
    pairs = write_training(work / "train")
    assert monitor.main(["baseline", "--train-dir", str(work / "train"), "--output-dir", str(work / "baseline")]) == 0
    problems = []
    for endpoint, shifted in (("same", False), ("shifted", True)):
        write_capture(work / "s3", pairs, args.records, shifted, endpoint)
        seconds, report = timed_check(work, endpoint)
        violations = ", ".join(report["violations"]) or "none"
        print(f"{endpoint:>8} traffic: {report['records']:,} records, {report['rows']:,} prompts in {seconds:.2f} s "
              f"({report['records'] / seconds:,.0f} records/s); verdict {report['verdict']}; violations: {violations}")
        problems += [f"{endpoint} traffic: {problem}" for problem in verdict_problems(report, args.records, shifted)]
    print(f"work folder: {work}")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def verdict_problems(report: dict, records: int, shifted: bool) -> list[str]:
    """How a check's report differs from the traffic written: every record read, and the injected verdict."""
    problems = [f"{report[key]:,} {key} read, {records:,} written"
                for key in ("records", "rows") if report[key] != records]
    if not shifted and (report["verdict"] != "ok" or report["violations"]):
        problems.append(f"verdict {report['verdict']} ({report['violations']}) on traffic like the training data")
    missing = {"topic_coverage", "refusal_rate"} - set(report["violations"]) if shifted else set()
    if shifted and (report["verdict"] != "drift" or missing):
        problems.append(f"verdict {report['verdict']}, violations {report['violations']} on shifted traffic "
                        f"(missing: {sorted(missing)})")
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
