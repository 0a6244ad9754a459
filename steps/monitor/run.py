"""The monitoring step's checks and command line (entry script: steps/monitor.py, which says what the step does)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common.contract import build_subcommand_parser
from monitor.baseline import (BaselineError, build_baseline, current_statistics, load_baseline,
                              read_training_examples, write_baseline)
from monitor.capture import CaptureFormatError, capture_lines, llm_rows, parse_capture_line
from monitor.checks import input_drift_checks, output_checks, score_prompts, verdict
from monitor.contract import FLAG_SEPARATOR, SUBCOMMANDS
from monitor.features import extract
from monitor.formats import MonitorFormatError, violations_document, write_json

DESCRIPTION = "Monitoring step: drift and quality of an endpoint's captured traffic against the training data."
MAX_LISTED_PROBLEMS = 50


class MonitorError(Exception):
    """The monitor cannot run; the message says what to fix."""


def read_traffic(capture_dir: Path, since: datetime | None) -> tuple[list[Any], int, list[dict[str, str]]]:
    """(rows, records read, problems): every LLM row captured since ``since``; unreadable records are
    listed with their file:line, not dropped silently."""
    since_text = since.strftime("%Y-%m-%dT%H:%M:%SZ") if since else ""
    records, rows, problems = 0, [], []
    for _, source, line in capture_lines(capture_dir, since.strftime("%Y/%m/%d/%H") if since else ""):
        try:
            record = parse_capture_line(line, source)
            if since_text and record["inference_time"] < since_text:
                continue
            records += 1
            rows.extend(llm_rows(record))
        except CaptureFormatError as error:
            problems.append({"source": source, "reason": str(error)})
    return rows, records, problems


def run_check(args: argparse.Namespace, cloudwatch: Any, now: datetime) -> dict[str, Any]:
    """One monitoring run; writes the output files and returns report.json."""
    baseline = load_baseline(args.baseline_dir)
    since = now - timedelta(hours=args.since_hours) if args.since_hours > 0 else None
    rows, records, problems = read_traffic(args.capture_dir, since)
    if problems and not rows:
        raise MonitorError(f"no readable capture record under {args.capture_dir}; first problem: "
                           f"{problems[0]['reason']}")
    features = extract([row.prompt for row in rows], [row.response for row in rows], [row.max_new_tokens for row in rows])
    service: dict[str, float | None] = {}
    if cloudwatch is not None:
        from monitor.cloudwatch import service_metrics

        service = service_metrics(cloudwatch, args.endpoint_name, args.variant, since or now - timedelta(days=14), now)
    scores = score_prompts(baseline, features, args.seed)
    results = input_drift_checks(baseline, scores, features.rows) + output_checks(baseline, features, service)
    min_rows = int(baseline.thresholds["min_rows"])
    outcome = verdict(results, features.rows, min_rows)
    summary = {"rows": features.rows, "records": records, "responses_missing": features.responses_missing,
               "max_new_tokens": dict(features.max_new_tokens), "sample_size": len(scores.sample)}
    write_json(args.output_dir / "statistics.json", current_statistics(
        baseline, features.prompt_length, scores.coverage, scores.unseen, features, summary))
    write_json(args.output_dir / "constraint_violations.json",
               violations_document([r.violation() for r in results if r.violated]))
    report: dict[str, Any] = {
        "endpoint_name": args.endpoint_name, "verdict": outcome, "generated_at": now.isoformat(timespec="seconds"),
        "window": {"since": since.isoformat(timespec="seconds") if since else None, "until": now.isoformat(
            timespec="seconds")}, "records": records, "rows": features.rows, "min_rows": min_rows,
        "sample_size": len(scores.sample),
        "unreadable_records": {"count": len(problems), "examples": problems[:MAX_LISTED_PROBLEMS]},
        "service_metrics": service, "checks": [r.as_json() for r in results],
        "violations": [r.name for r in results if r.violated], "baseline_dir": str(args.baseline_dir)}
    if cloudwatch is not None:
        from monitor.cloudwatch import publish, put_violation_alarm

        report["metrics_published"] = publish(cloudwatch, args.namespace, args.endpoint_name, results, outcome, now)
        if args.create_alarm:
            period = min(86400, max(60, int(args.since_hours * 3600) // 60 * 60 or 3600))
            report["alarm"] = put_violation_alarm(cloudwatch, args.namespace, args.endpoint_name, period)
    write_json(args.output_dir / "report.json", report)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_subcommand_parser(SUBCOMMANDS, DESCRIPTION, FLAG_SEPARATOR).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        if args.mode == "baseline":
            prompts, completions = read_training_examples(args.train_dir)
            baseline = build_baseline(prompts, completions, dict(args.threshold), args.reference_size, args.seed)
            written = write_baseline(baseline, args.output_dir)
            print(f"monitor: baseline of {len(prompts)} training examples → {', '.join(p.name for p in written)} "
                  f"in {args.output_dir} ({time.perf_counter() - started:.1f}s)")
            return 0
        cloudwatch = None
        if not args.no_cloudwatch:
            import boto3

            cloudwatch = boto3.client("cloudwatch")
        report = run_check(args, cloudwatch, datetime.now(timezone.utc))
    except (MonitorError, BaselineError, MonitorFormatError, CaptureFormatError) as error:
        print(f"monitor: error: {error}", file=sys.stderr)
        return 1
    print(f"monitor: {report['endpoint_name']}: {report['verdict']} over {report['rows']} prompts "
          f"({report['records']} records, {report['unreadable_records']['count']} unreadable) in "
          f"{time.perf_counter() - started:.1f}s")
    for check in report["checks"]:
        mark = "VIOLATION" if check["violated"] else ("ok" if check["evaluated"] else "not evaluated")
        print(f"monitor:   {check['name']:<22} {mark}: {check['description']}")
    print(json.dumps({"verdict": report["verdict"], "violations": report["violations"]}))
    return 2 if args.fail_on_violation and report["violations"] else 0

