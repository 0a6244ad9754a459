"""The training step's contract: every train.py argument, declared once (common/contract.py explains the fields).

train.py's parser is built from ARGUMENTS; the control plane reads this file by path
(pipelines/step_contracts.py): the config schema takes its defaults from here, the pipeline passes every
argument that has a config key (as a pipeline parameter where `parameter` is set). The defaults are
for real models; the demo's tiny-model values live in pipelines/configs/demo.yaml and `continuum init`.

Standard library and common/contract.py only.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.contract import Argument, parse_bool

# The continual-learning strategy: a comma list of components, or naive (none). Declared here only.
STRATEGY_COMPONENTS = ("replay", "ewc", "l2sp", "modular", "distill")  # in this order in every record
NO_STRATEGY = ("naive", "none")
DEFAULT_STRATEGY = "replay,ewc,distill"  # with the replay budget and selection below: bench/forgetting.py's best
REPLAY_SELECTIONS = ("at_risk", "random", "rotating", "online")  # steps/train/replay_budget.py, online_replay.py
REPLAY_BUDGET_UNITS = ("examples", "tokens")


class Strategy(frozenset):
    """A parsed --strategy: the set of its components (empty: naive). `"ewc" in strategy` asks for one."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name in STRATEGY_COMPONENTS if name in self)

    def __str__(self) -> str:
        return ",".join(self.names) or "naive"


def parse_strategy(text: str) -> Strategy:
    """A comma list of strategies (replay, ewc, l2sp, modular, distill), or naive/none; case and spaces ignored."""
    names = {name.strip().lower() for name in str(text).split(",") if name.strip()}
    if not names:
        raise argparse.ArgumentTypeError("empty strategy; use e.g. 'replay', 'replay,ewc' or 'naive'")
    if names & set(NO_STRATEGY):
        if len(names) > 1:
            raise argparse.ArgumentTypeError(f"'naive' cannot be combined with other strategies, got {text!r}")
        return Strategy()
    unknown = sorted(names - set(STRATEGY_COMPONENTS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGY_COMPONENTS)} (comma list) or naive"
        )
    return Strategy(names)


FOLDERS = "folders (container contract)"
LORA = "model and LoRA"
OPTIMISATION = "optimisation"
CONTINUAL = "continual learning"
SPEED = "speed"
OPERATIONS = "checkpoints and cost"

ARGUMENTS = (
    Argument("train_dir", Path, env="SM_CHANNEL_TRAIN", group=FOLDERS, help="default: $SM_CHANNEL_TRAIN"),
    Argument("validation_dir", Path, env="SM_CHANNEL_VALIDATION", group=FOLDERS,
             help="default: $SM_CHANNEL_VALIDATION"),
    Argument("base_model_dir", Path, env="SM_CHANNEL_BASE_MODEL", group=FOLDERS,
             help="default: $SM_CHANNEL_BASE_MODEL"),
    Argument("report_dir", Path, env="SM_CHANNEL_REPORT", group=FOLDERS,
             help="the prepare step's report (data_version); default: $SM_CHANNEL_REPORT"),
    Argument("model_dir", Path, env="SM_MODEL_DIR", group=FOLDERS, help="default: $SM_MODEL_DIR"),
    Argument("checkpoint_dir", Path, env="SM_CHECKPOINT_DIR", group=FOLDERS,
             help="default: $SM_CHECKPOINT_DIR, else /opt/ml/checkpoints if present; none: no checkpoints"),

    Argument("base_model", str, "", config="model.base_model", group=LORA,
             help="HF id or path, used when the base_model channel is empty"),
    Argument("lora_r", int, 16, config="training.lora.r", parameter=True, group=LORA),
    Argument("lora_alpha", float, 32.0, config="training.lora.alpha", parameter=True, group=LORA),
    Argument("lora_dropout", float, 0.0, config="training.lora.dropout", parameter=True, group=LORA),
    Argument("target_modules", str, "all-linear", config="training.lora.target_modules", parameter=True,
             qualifier="Lora", group=LORA, help="'all-linear' or a comma list"),
    Argument("quantization", str, "none", choices=("none", "4bit"), config="training.quantization", parameter=True,
             group=LORA, help="4bit: QLoRA (NF4 base weights via bitsandbytes; CUDA only)"),
    Argument("precision", str, "auto", choices=("auto", "bf16", "fp32"), group=LORA,
             help="auto: bf16 on GPUs that support it, else fp32"),
    Argument("prompt_template", str, "auto", group=LORA,
             help="auto: the starting model's template, else the tokenizer's chat template, else the default"),

    Argument("learning_rate", float, 2e-4, config="training.learning_rate", parameter=True, group=OPTIMISATION),
    Argument("epochs", float, 3.0, config="training.epochs", parameter=True, group=OPTIMISATION),
    Argument("max_steps", int, -1, config="training.max_steps", group=OPTIMISATION, help="-1: run for --epochs"),
    Argument("batch_size", int, 8, config="training.batch_size", group=OPTIMISATION,
             help="examples per step (packing: sets the token budget)"),
    Argument("max_seq_length", int, 512, config="training.max_seq_length", group=OPTIMISATION),
    Argument("warmup_ratio", float, 0.05, group=OPTIMISATION),
    Argument("max_grad_norm", float, 1.0, group=OPTIMISATION),
    Argument("seed", int, 42, config="training.seed", group=OPTIMISATION),

    Argument("strategy", parse_strategy, DEFAULT_STRATEGY, config="training.continual.strategy", parameter=True,
             qualifier="Training", group=CONTINUAL,
             help=f"comma list of {', '.join(STRATEGY_COMPONENTS)}, or naive (default: {DEFAULT_STRATEGY})"),
    Argument("replay_weight", float, 1.0, config="training.continual.replay_weight", parameter=True, group=CONTINUAL,
             help="loss weight of replayed examples"),
    Argument("replay_budget", float, 0.1, config="training.continual.replay_budget", parameter=True,
             group=CONTINUAL, help="replayed history trained on per epoch: <= 1 a share of the history, > 1 an "
                                   "amount, in --replay_budget_unit (1: all of it)"),
    Argument("replay_budget_unit", str, "examples", choices=REPLAY_BUDGET_UNITS,
             config="training.continual.replay_budget_unit", parameter=True, group=CONTINUAL,
             help="what the replay budget counts"),
    Argument("replay_selection", str, "online", choices=REPLAY_SELECTIONS,
             config="training.continual.replay_selection", parameter=True, group=CONTINUAL,
             help="online: each epoch, the known items closest to being forgotten under the current weights (a "
                  "window of the history re-scored every epoch), per data version; at_risk: the items the starting "
                  "model is closest to getting wrong (lowest answer margin), per data version; random: a seeded "
                  "sample per data version; rotating: a budget's worth per epoch, each epoch the next window of "
                  "every data version"),
    Argument("ewc_lambda", float, 0.3, config="training.continual.ewc_lambda", parameter=True, group=CONTINUAL,
             help="EWC strength (Fisher normalised to mean 1)"),
    Argument("l2sp_lambda", float, 0.1, config="training.continual.l2sp_lambda", parameter=True, group=CONTINUAL,
             help="L2-SP strength toward the previous weights"),
    Argument("orthogonal_lambda", float, 100.0, config="training.continual.orthogonal_lambda", parameter=True,
             group=CONTINUAL, help="modular: penalty on overlap with the previous adapters' input subspaces"),
    Argument("distill_lambda", float, 0.3, config="training.continual.distill_lambda", parameter=True, group=CONTINUAL,
             help="distill: weight of the KL term to the starting model on the history's inputs (train.strategies)"),
    Argument("distill_budget", float, 0.1, config="training.continual.distill_budget", parameter=True, group=CONTINUAL,
             help="distill: share of the history's examples distilled on per epoch (<= 1), spread over the steps"),
    Argument("fisher_samples", int, 256, config="training.continual.fisher_samples", group=CONTINUAL,
             help="examples for this version's Fisher information (0: none; next version cannot use EWC)"),

    Argument("packing", parse_bool, True, config="training.packing", group=SPEED,
             help="pack examples into one row per step (position_ids reset, no cross-example attention)"),
    Argument("tokens_per_batch", int, 0, config="training.tokens_per_batch", group=SPEED,
             help="packing token budget per step and device; 0: batch_size x mean example length"),
    Argument("attn_implementation", str, "auto", group=SPEED,
             help="auto: flash_attention_2 on CUDA when installed, else sdpa"),
    Argument("compile", parse_bool, False, group=SPEED, help="torch.compile the model (static packed shapes)"),
    Argument("gradient_checkpointing", parse_bool, False, group=SPEED),

    Argument("checkpoint_every_seconds", float, 600.0, group=OPERATIONS,
             help="also checkpoint this often (SIGTERM always checkpoints)"),
    Argument("keep_checkpoints", int, 2, group=OPERATIONS),
    Argument("instance_price_per_hour", float, -1.0, group=OPERATIONS,
             help="USD per instance-hour for the cost estimate; -1: the built-in on-demand table"),
    Argument("verbose", parse_bool, False, env="CONTINUUM_VERBOSE", nargs="?", const=True, group=OPERATIONS,
             help="also log debug lines (penalty terms per log step), library warnings and progress bars "
                  "(default: $CONTINUUM_VERBOSE, else false)"),
)  # fmt: skip
