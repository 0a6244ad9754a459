"""The smoke test step's contract: every smoke_test.py argument, declared once (common/contract.py explains the fields).

smoke_test.py's parser is built from ARGUMENTS; the control plane reads this file by path
(pipelines/step_contracts.py): the deploy pipeline's CheckSmokeSuites and SmokeTest steps
(pipelines/deploy/pipeline.py) pass, in this order, every argument with a config key and the ones they wire
themselves (the endpoint, the gate threshold parameter, the input and output folders, the `--check-only` switch).

Standard library and common/contract.py only.
"""
from __future__ import annotations

from pathlib import Path

from common.contract import Argument

FLAG_SEPARATOR = "-"  # the pipeline passes --endpoint-name (the parser takes both spellings)
OUTPUT_DIR = "/opt/ml/processing/output/smoke"
DEFAULT_MAX_NEW_TOKENS = 16

ENDPOINT = "endpoint"
BENCHMARKS = "benchmark suites (through the endpoint)"
FOLDERS = "folders (processing-container contract)"

ARGUMENTS = (
    Argument("endpoint_name", str, required=True, group=ENDPOINT),
    Argument("prompt", str, action="append", required=True, config="deploy.smoke_prompts", group=ENDPOINT,
             help="repeat for several"),
    Argument("check_only", default=False, action="store_true", group=BENCHMARKS,
             help="load the suites and check the gate metric can be scored live; call no endpoint"),
    Argument("gate_threshold", float, 0.0, group=BENCHMARKS),
    Argument("data_dir", Path, group=FOLDERS,
             help="the deployed version's train split: suite cases it answers differently are scored against its "
                  "answer (common/suite_targets.py)"),
    Argument("output_dir", Path, Path(OUTPUT_DIR), group=FOLDERS),
    Argument("benchmarks_dir", Path, group=FOLDERS, help="benchmark suites to score through the endpoint"),
    Argument("benchmark_max_new_tokens", int, 24, config="evaluation.max_new_tokens", group=BENCHMARKS),
    Argument("gate_metric", str, "", config="evaluation.gate.metric", group=BENCHMARKS,
             help="e.g. company_facts_token_f1 (needs --benchmarks-dir)"),
    Argument("max_new_tokens", int, DEFAULT_MAX_NEW_TOKENS, group=ENDPOINT),
    Argument("suites", str, "", group=BENCHMARKS, help="comma-separated suite names (default: every suite found)"),
    Argument("batch_size", int, 8, group=BENCHMARKS, help="benchmark prompts per invocation"),
)  # fmt: skip
