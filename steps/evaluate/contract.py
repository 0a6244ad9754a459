"""The evaluate step's contract: every evaluate.py argument, declared once (common/contract.py explains the fields).

evaluate.py's parser is built from ARGUMENTS; the control plane reads this file by path
(pipelines/step_contracts.py): the config schema (evaluation.*) takes its defaults from here, the pipeline's
EvaluateModel step passes, in this order, every argument with a config key (as its pipeline parameter where
`parameter` is set) and the ones it wires itself (output folders, the baseline's identity). Not mechanical,
so passed by the pipeline by hand: the input folders (`--model-dir=...`), evaluation.lm_eval_tasks (a list)
and evaluation.gate.higher_is_better (`--gate-lower-is-better`).

The gate bounds' defaults here are "no bound" (a hand run is not gated unless asked); the pipeline's
defaults for them are the config's (evaluation.gate), overridable per execution as pipeline parameters.

Standard library and common/contract.py only.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from common.contract import Argument, parse_bool

FLAG_SEPARATOR = "-"  # the pipeline passes --retention-max-cases (the parser takes both spellings)
INPUT_ROOT = Path("/opt/ml/processing/input")
OUTPUT_DIR = Path("/opt/ml/processing/output/evaluation")


def optional_float(text: str) -> float | None:
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


def optional_path(text: str) -> Path | None:
    """A folder, or '' for none."""
    return Path(text) if text else None


FOLDERS = "folders (processing-container contract)"
INVENTORY = "knowledge inventory"
LINEAGE = "lineage"
SUITES = "suites"
SCORING = "scoring"
GATE = "gate"
REMOTE = "models served by Amazon Bedrock (evaluate/remote.py)"

ARGUMENTS = (
    Argument("model_dir", Path, INPUT_ROOT / "model", group=FOLDERS, help="candidate: model dir or model.tar.gz"),
    Argument("baseline_dir", optional_path, INPUT_ROOT / "baseline", group=FOLDERS,
             help="previous version; '' for none"),
    Argument("validation_dir", optional_path, INPUT_ROOT / "validation", group=FOLDERS,
             help="held-out split; '' for none"),
    Argument("train_dir", optional_path, group=FOLDERS,
             help="this version's train split: its new examples join the knowledge inventory (replayed rows are skipped)"),
    Argument("data_report_dir", optional_path, group=FOLDERS, help="the prepare step's report (lineage)"),
    Argument("inventory_dir", optional_path, group=FOLDERS,
             help="the previous version's knowledge inventory (inventory.jsonl); its known items are re-asked"),
    Argument("benchmarks_dir", Path, INPUT_ROOT / "benchmarks", group=FOLDERS, help="built-in suites"),
    Argument("custom_benchmarks_dir", optional_path, group=FOLDERS, help="extra suites: every suite found is run"),
    Argument("output_dir", Path, OUTPUT_DIR, group=FOLDERS),
    Argument("inventory_output_dir", optional_path, group=FOLDERS,
             help="where this version's knowledge inventory goes (default: none kept)"),

    Argument("retention_max_cases", int, 128, config="evaluation.retention_max_cases", group=INVENTORY,
             help="most known inventory items re-asked to both models (0: no retention check)"),
    Argument("retention_max_new_cases", int, 256, config="evaluation.retention_max_new_cases", group=INVENTORY,
             help="most other inventory items (never checked first) asked to the candidate for the next inventory"),

    Argument("candidate_model_id", str, "", group=REMOTE,
             help="ask this Bedrock model (custom model / provisioned throughput / deployment ARN) through "
                  "bedrock-runtime instead of loading --model-dir (generation suites and inventory checks only)"),
    Argument("baseline_model_id", str, "", group=REMOTE,
             help="the same for the baseline instead of --baseline-dir (e.g. the Bedrock base model id)"),

    Argument("baseline_version", int, group=LINEAGE, help="registry version of the baseline (0: base model)"),
    Argument("baseline_model_package_arn", str, group=LINEAGE,
             help="registry ARN of the baseline ('none': base model)"),

    Argument("suites", str, "", group=SUITES, help="comma-separated built-in suite names (default: all found)"),
    Argument("lm_eval_tasks", str, "", group=SUITES, help="comma-separated lm-eval task names (datasets from the hub)"),
    Argument("lm_eval_limit", int, group=SUITES, help="at most this many documents per lm-eval task"),
    Argument("check_suites_only", parse_bool, False, nargs="?", const=True, group=SUITES,
             help="load and check the suites, print them, load no model"),

    Argument("max_new_tokens", int, 32, config="evaluation.max_new_tokens", group=SCORING),
    Argument("batch_size", int, 64, config="evaluation.batch_size", group=SCORING,
             help="most sequences per forward/generate call"),
    Argument("max_batch_tokens", int, 4096, group=SCORING, help="most tokens (rows x longest row) per forward pass"),
    Argument("max_seq_length", int, 1024, group=SCORING),

    Argument("gate_metric", str, config="evaluation.gate.metric", group=GATE,
             help="metric to gate on (default: no gate)"),
    Argument("gate_threshold", optional_float, config="evaluation.gate.threshold", parameter=True, group=GATE,
             help="absolute bar (default: none)"),
    Argument("gate_max_regression", optional_float, config="evaluation.gate.max_regression", parameter=True,
             parameter_as="MaxRegression", group=GATE, help="allowed worsening vs baseline (default: none)"),
    Argument("gate_max_forgetting", optional_float, config="evaluation.gate.max_forgetting", parameter=True,
             parameter_as="MaxForgetting", group=GATE,
             help="largest allowed share of re-asked known inventory items the candidate answers wrong (default: none)"),
    Argument("gate_lower_is_better", parse_bool, False, nargs="?", const=True, group=GATE,
             help="the gate metric is lower-is-better"),
)  # fmt: skip

# Config keys whose default is the pipeline's policy, not the step's ("no bound" by hand; see above).
PIPELINE_DEFAULTS = ("evaluation.gate.max_regression", "evaluation.gate.max_forgetting")
