"""The training step's command line, built from its contract (train/contract.py): hyperparameters
(`--name value`) and container folders.

SageMaker passes every hyperparameter as `--name value` strings (booleans as `true`/`false`);
a bad value exits with a message naming the flag.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.contract import build_parser as build_contract_parser
from train.contract import ARGUMENTS

DEFAULT_CHECKPOINT_DIR = Path("/opt/ml/checkpoints")

# Hyperparameters recorded in continuum.json; they (with the data and the base model) also define a
# run's fingerprint, so a checkpoint is only resumed by the run that wrote it.
HYPERPARAMETERS = (
    "base_model", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "epochs",
    "max_steps", "batch_size", "max_seq_length", "seed", "strategy", "replay_weight", "replay_budget",
    "replay_budget_unit", "replay_selection", "ewc_lambda",
    "l2sp_lambda", "orthogonal_lambda", "fisher_samples", "packing", "tokens_per_batch", "quantization",
    "precision", "attn_implementation", "compile", "gradient_checkpointing", "prompt_template",
    "warmup_ratio", "max_grad_norm",
)  # fmt: skip


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """All flags (channels/outputs, LoRA, optimisation, continual learning, speed, checkpoints, cost) from the
    contract; without $SM_CHECKPOINT_DIR, checkpoints go to /opt/ml/checkpoints when it exists (SageMaker's
    CheckpointConfig)."""
    parser = build_contract_parser(ARGUMENTS, description)
    if parser.get_default("checkpoint_dir") is None and DEFAULT_CHECKPOINT_DIR.is_dir():
        parser.set_defaults(checkpoint_dir=DEFAULT_CHECKPOINT_DIR)
    return parser


def parse_args(argv: list[str] | None, description: str | None = None) -> argparse.Namespace:
    """Parse and check the arguments; a missing folder or bad value exits with a message naming it."""
    parser = build_parser(description)
    args = parser.parse_args(argv)
    if args.train_dir is None:
        parser.error("no training data: pass --train-dir or set SM_CHANNEL_TRAIN")
    if args.model_dir is None:
        parser.error("no output folder: pass --model-dir or set SM_MODEL_DIR")
    for name in ("lora_r", "batch_size", "max_seq_length", "keep_checkpoints"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.learning_rate <= 0 or args.epochs <= 0:
        parser.error("--learning_rate and --epochs must be > 0")
    if not 0 <= args.lora_dropout < 1:
        parser.error(f"--lora_dropout must be in [0, 1), got {args.lora_dropout}")
    if not 0 <= args.warmup_ratio < 1:
        parser.error(f"--warmup_ratio must be in [0, 1), got {args.warmup_ratio}")
    for name in ("replay_budget", "replay_weight", "ewc_lambda", "l2sp_lambda", "orthogonal_lambda", "fisher_samples", "tokens_per_batch"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.compile and not args.packing:
        parser.error("--compile needs --packing true (static packed shapes)")
    return args


def recorded_hyperparameters(args: argparse.Namespace) -> dict[str, object]:
    """The hyperparameters as continuum.json records them (strategy as its comma string)."""
    values = {name: getattr(args, name) for name in HYPERPARAMETERS}
    values["strategy"] = str(args.strategy)
    return values
