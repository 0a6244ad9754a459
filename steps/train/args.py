"""The training step's command line: contract hyperparameters (`--name value`) and container folders.

SageMaker passes every hyperparameter as `--name value` strings (booleans as `true`/`false`);
a bad value exits with a message naming the flag.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_CHECKPOINT_DIR = Path("/opt/ml/checkpoints")
STRATEGY_CHOICES = ("replay", "ewc", "l2sp", "modular")
NO_STRATEGY = ("naive", "none")
DEFAULT_STRATEGY = "replay,ewc"

# Hyperparameters recorded in continuum.json; they (with the data and the base model) also define a
# run's fingerprint, so a checkpoint is only resumed by the run that wrote it.
HYPERPARAMETERS = (
    "base_model", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "epochs",
    "max_steps", "batch_size", "max_seq_length", "seed", "strategy", "replay_weight", "ewc_lambda",
    "l2sp_lambda", "orthogonal_lambda", "fisher_samples", "packing", "tokens_per_batch", "quantization",
    "precision", "attn_implementation", "compile", "gradient_checkpointing", "prompt_template",
    "warmup_ratio", "max_grad_norm",
)  # fmt: skip


def parse_bool(text: str) -> bool:
    """'true'/'false' (any case, also 1/0/yes/no), as SageMaker passes booleans."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_strategy(text: str) -> tuple[str, ...]:
    """A comma list of strategies (replay, ewc, l2sp, modular), or naive/none; sorted, deduplicated."""
    names = {name.strip().lower() for name in str(text).split(",") if name.strip()}
    if not names:
        raise argparse.ArgumentTypeError("empty strategy; use e.g. 'replay', 'replay,ewc' or 'naive'")
    if names & set(NO_STRATEGY):
        if len(names) > 1:
            raise argparse.ArgumentTypeError(f"'naive' cannot be combined with other strategies, got {text!r}")
        return ()
    unknown = sorted(names - set(STRATEGY_CHOICES))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGY_CHOICES)} (comma list) or naive"
        )
    return tuple(name for name in STRATEGY_CHOICES if name in names)


def _default_checkpoint_dir() -> Path | None:
    """$SM_CHECKPOINT_DIR, else /opt/ml/checkpoints when it exists (SageMaker's CheckpointConfig), else none."""
    if os.environ.get("SM_CHECKPOINT_DIR"):
        return Path(os.environ["SM_CHECKPOINT_DIR"])
    return DEFAULT_CHECKPOINT_DIR if DEFAULT_CHECKPOINT_DIR.is_dir() else None


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """All flags: channels/outputs, LoRA, optimisation, continual learning, speed, checkpoints, cost."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    folders = parser.add_argument_group("folders (container contract)")
    folders.add_argument("--train-dir", type=Path, default=env("SM_CHANNEL_TRAIN"), help="default: $SM_CHANNEL_TRAIN")
    folders.add_argument("--validation-dir", type=Path, default=env("SM_CHANNEL_VALIDATION"),
                         help="default: $SM_CHANNEL_VALIDATION")
    folders.add_argument("--base-model-dir", type=Path, default=env("SM_CHANNEL_BASE_MODEL"),
                         help="default: $SM_CHANNEL_BASE_MODEL")
    folders.add_argument("--report-dir", type=Path, default=env("SM_CHANNEL_REPORT"),
                         help="the prepare step's report (data_version); default: $SM_CHANNEL_REPORT")
    folders.add_argument("--model-dir", type=Path, default=env("SM_MODEL_DIR"), help="default: $SM_MODEL_DIR")
    folders.add_argument("--checkpoint-dir", type=Path, default=_default_checkpoint_dir(),
                         help="default: $SM_CHECKPOINT_DIR, else /opt/ml/checkpoints if present; none: no checkpoints")

    lora = parser.add_argument_group("model and LoRA")
    lora.add_argument("--base_model", default="", help="HF id or path, used when the base_model channel is empty")
    lora.add_argument("--lora_r", type=int, default=32)
    lora.add_argument("--lora_alpha", type=float, default=64.0)
    lora.add_argument("--lora_dropout", type=float, default=0.0)
    lora.add_argument("--target_modules", default="all-linear", help="'all-linear' or a comma list")
    lora.add_argument("--quantization", choices=("none", "4bit"), default="none",
                      help="4bit: QLoRA (NF4 base weights via bitsandbytes; CUDA only)")
    lora.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                      help="auto: bf16 on GPUs that support it, else fp32")
    lora.add_argument("--prompt_template", default="auto",
                      help="auto: the starting model's template, else the tokenizer's chat template, else the default")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--learning_rate", type=float, default=3e-3)
    optim.add_argument("--epochs", type=float, default=20.0)
    optim.add_argument("--max_steps", type=int, default=-1, help="-1: run for --epochs")
    optim.add_argument("--batch_size", type=int, default=8, help="examples per step (packing: sets the token budget)")
    optim.add_argument("--max_seq_length", type=int, default=256)
    optim.add_argument("--warmup_ratio", type=float, default=0.05)
    optim.add_argument("--max_grad_norm", type=float, default=1.0)
    optim.add_argument("--seed", type=int, default=42)

    continual = parser.add_argument_group("continual learning")
    continual.add_argument("--strategy", type=parse_strategy, default=parse_strategy(DEFAULT_STRATEGY),
                           help=f"comma list of {', '.join(STRATEGY_CHOICES)}, or naive (default: {DEFAULT_STRATEGY})")
    continual.add_argument("--replay_weight", type=float, default=1.0, help="loss weight of replayed examples")
    continual.add_argument("--ewc_lambda", type=float, default=0.1, help="EWC strength (Fisher normalised to mean 1)")
    continual.add_argument("--l2sp_lambda", type=float, default=0.1, help="L2-SP strength toward the previous weights")
    continual.add_argument("--orthogonal_lambda", type=float, default=100.0,
                           help="modular: penalty on overlap with the previous adapters' input subspaces")
    continual.add_argument("--fisher_samples", type=int, default=256,
                           help="examples for this version's Fisher information (0: none; next version cannot use EWC)")

    speed = parser.add_argument_group("speed")
    speed.add_argument("--packing", type=parse_bool, default=True,
                       help="pack examples into one row per step (position_ids reset, no cross-example attention)")
    speed.add_argument("--tokens_per_batch", type=int, default=0,
                       help="packing token budget per step and device; 0: batch_size x mean example length")
    speed.add_argument("--attn_implementation", default="auto",
                       help="auto: flash_attention_2 on CUDA when installed, else sdpa")
    speed.add_argument("--compile", type=parse_bool, default=False, help="torch.compile the model (static packed shapes)")
    speed.add_argument("--gradient_checkpointing", type=parse_bool, default=False)

    ops = parser.add_argument_group("checkpoints and cost")
    ops.add_argument("--checkpoint_every_seconds", type=float, default=600.0,
                     help="also checkpoint this often (SIGTERM always checkpoints)")
    ops.add_argument("--keep_checkpoints", type=int, default=2)
    ops.add_argument("--instance_price_per_hour", type=float, default=-1.0,
                     help="USD per instance-hour for the cost estimate; -1: the built-in on-demand table")
    ops.add_argument("--verbose", type=parse_bool, nargs="?", const=True,
                     default=parse_bool(env("CONTINUUM_VERBOSE") or "false"),
                     help="also log debug lines (penalty terms per log step), library warnings and progress bars "
                          "(default: $CONTINUUM_VERBOSE, else false)")
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
    for name in ("replay_weight", "ewc_lambda", "l2sp_lambda", "orthogonal_lambda", "fisher_samples", "tokens_per_batch"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.compile and not args.packing:
        parser.error("--compile needs --packing true (static packed shapes)")
    return args


def recorded_hyperparameters(args: argparse.Namespace) -> dict[str, object]:
    """The hyperparameters as continuum.json records them (strategy as its comma string)."""
    values = {name: getattr(args, name) for name in HYPERPARAMETERS}
    values["strategy"] = ",".join(args.strategy) or "naive"
    return values
