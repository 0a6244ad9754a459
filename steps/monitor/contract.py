"""The monitor step's contract: every monitor.py argument, per subcommand, declared once (common/contract.py
explains the fields).

monitor.py's parser has one subcommand per entry of SUBCOMMANDS, each built from its arguments (flags
`--train-dir`, also `--train_dir`); the deploy pipeline's MonitoringBaseline step (`baseline`) and the monitor
pipeline's MonitorTraffic step (`check`) pass theirs in this order, with these flags
(pipelines/deploy/pipeline.py, pipelines/deploy/monitor_pipeline.py: step_contracts.config_argv with
"monitor:baseline" and "monitor:check").
Not mechanical, so kept by hand: the pipeline parameter MonitoredEndpointName (`endpoint_name`) and the
thresholds (`deploy.monitoring.thresholds`, a mapping the pipeline passes as one `--threshold NAME=VALUE` each).

Standard library and common/contract.py only (`threshold` reads the thresholds' names when it parses).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.contract import Argument

FLAG_SEPARATOR = "-"  # the pipeline passes --train-dir (the parser takes both spellings)
OUTPUT_DIR = Path("/opt/ml/processing/output/monitoring")


def threshold(text: str) -> tuple[str, float]:
    """A `--threshold NAME=VALUE`: NAME one of the baseline's thresholds, VALUE a number."""
    from monitor.baseline import DEFAULT_THRESHOLDS

    name, sep, value = text.partition("=")
    if not sep or name not in DEFAULT_THRESHOLDS:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(DEFAULT_THRESHOLDS)}, "
                                         f"got {text!r}")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a number") from None


BASELINE_ARGUMENTS = (
    Argument("train_dir", Path, required=True, help="*.jsonl with prompt and completion"),
    Argument("output_dir", Path, OUTPUT_DIR),
    Argument("threshold", threshold, [], action="append", metavar="NAME=VALUE"),
    Argument("reference_size", int, 2000, help="training prompts kept for the topic index and its calibration"),
    Argument("seed", int, 0),
)

CHECK_ARGUMENTS = (
    Argument("baseline_dir", Path, required=True),
    Argument("capture_dir", Path, required=True, help="{DestinationS3Uri}/{endpoint}"),
    Argument("endpoint_name", required=True, config="deploy.monitored_endpoint", parameter=True,
             parameter_as="MonitoredEndpointName"),
    Argument("variant", str, "AllTraffic"),
    Argument("since_hours", float, 24.0, help="window (0 = every captured record)",
             config="deploy.monitoring.since_hours", parameter=True),
    Argument("namespace", str, "continuum/Monitoring", help="CloudWatch namespace of the results",
             config="deploy.monitoring.namespace"),
    Argument("no_cloudwatch", default=False, action="store_true", help="no service metrics in, no results out"),
    Argument("create_alarm", default=False, action="store_true", help="alarm on constraint_violations > 0"),
    Argument("fail_on_violation", default=False, action="store_true", help="exit 2 when a constraint is violated"),
    Argument("seed", int, 0),
    Argument("output_dir", Path, OUTPUT_DIR),
)

SUBCOMMANDS = {  # subcommand → (its --help line, its arguments)
    "baseline": ("statistics.json + constraints.json of the training data", BASELINE_ARGUMENTS),
    "check": ("drift and quality of captured traffic against a baseline", CHECK_ARGUMENTS),
}
