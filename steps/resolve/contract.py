"""The resolve step's contract: every resolve.py argument, declared once (common/contract.py explains the fields).

resolve.py's parser is built from ARGUMENTS; the control plane reads this file by path
(pipelines/step_contracts.py): the pipelines' Resolve steps (pipelines/common_steps.py) pass, in this order,
the argument with a config key and the ones they wire themselves (the fallback model and replay data, the
output folder, the `--require-approved` switch).

Standard library and common/contract.py only.
"""
from __future__ import annotations

from common.contract import Argument

FLAG_SEPARATOR = "-"  # the pipeline passes --model-package-group (the parser takes both spellings)
OUTPUT_DIR = "/opt/ml/processing/output/resolved"

ARGUMENTS = (
    Argument("model_package_group", str, config="model.model_package_group", required=True,
             help="Model Registry group name"),
    Argument("fallback_model_uri", str,
             help="model to use when the group has no Approved version (S3 URI or HF id)"),
    Argument("fallback_replay_uri", str,
             help="replay data when the group has no Approved version (a prefix holding only _EMPTY)"),
    Argument("output_dir", str, OUTPUT_DIR, help=f"where resolved.json goes (default {OUTPUT_DIR})"),
    Argument("require_approved", default=False, action="store_true",
             help="fail instead of falling back when no Approved version exists"),
)  # fmt: skip
