"""The one config schema: a YAML file validated by pydantic; errors name the field."""
from __future__ import annotations

import os
from argparse import ArgumentTypeError
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.bedrock_config import BedrockConfig, bedrock_problems
from pipelines.serving_config import ServingConfig
from pipelines.step_contracts import config_default, step_contract

DEMO_CONFIG_PATH = Path(__file__).parent / "configs" / "demo.yaml"
PROJECT_CONFIG_FILE = "continuum.yaml"  # what `continuum init` writes; found in the working folder
CONFIG_ENV = "CONTINUUM_CONFIG"


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,60}$")
    region: str = "us-east-1"
    role_arn: str = "arn:aws:iam::000000000000:role/continuum-sagemaker-execution"
    bucket: str = Field(min_length=3, max_length=63)
    tags: dict[str, str] = Field(default_factory=dict)


class ModelConfig(_Strict):
    base_model: str | None = Field(
        default=None,
        description="HF model id, local path or s3:// URI; None builds the tiny demo model locally",
    )
    model_package_group: str = Field(pattern=r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,62}$")


def _step_default(step: str, key: str, **constraints: Any) -> Any:
    """A field whose default is the step's for the argument that reads `key` (steps/<step>/contract.py)."""
    return Field(default=config_default(step, key), **{"validate_default": True, **constraints})


def _prepare(key: str, **constraints: Any) -> Any:
    return _step_default("prepare", key, **constraints)


class DataConfig(_Strict):
    """prepare.py's settings (steps/prepare/contract.py: the defaults, the allowed values)."""

    source: str = Field(min_length=1, description="local path or s3:// prefix of the raw company data")
    validation_fraction: float = _prepare("data.validation_fraction", ge=0, lt=1,
                                          description="share for validation (0: none)")
    test_fraction: float = _prepare("data.test_fraction", ge=0, lt=1, description="share held out as a test split")
    holdout: Literal["phrasings", "examples"] = _prepare(
        "data.holdout", description="phrasings: hold out phrasings of facts with several, never a fact, and "
                                    "re-ask one-phrasing facts; examples: hash split (withholds facts)")
    min_examples: int = _prepare("data.min_examples", ge=1)
    max_reject_rate: float = _prepare("data.max_reject_rate", ge=0, le=1,
                                      description="fail when more rows are quarantined")
    max_tokens: int | None = Field(default=None, ge=1, description="longer examples are quarantined; None: "
                                                                    "training.max_seq_length")
    max_file_mb: float = _prepare("data.max_file_mb", gt=0, validate_default=False,  # passed as 1024, as always
                                  description="bigger files are quarantined whole")
    max_row_mb: float = _prepare("data.max_row_mb", gt=0, description="bigger rows are quarantined while reading, "
                                                                       "before parsing or tokenizing")
    pii: Literal["redact", "block", "off"] = _prepare("data.pii")
    pii_allow: list[str] = _prepare("data.pii_allow", description="public values that are not PII: exact "
                                                                  "values, or @domain for every address at it")
    near_duplicate_threshold: float = _prepare("data.near_duplicate_threshold", gt=0, le=1)
    columns: dict[str, str] = _prepare("data.columns", description="canonical field -> your column name")
    replay_fraction: float = _prepare("data.replay_fraction", gt=0, le=1,
                                      description="share of the previous version's data replayed")
    retrain_min_change: float = _prepare("data.retrain_min_change", ge=0, description="skip training below this "
                                         "retrain score (0: always train; above 1: never)")
    max_changed_fraction: float = _prepare("data.max_changed_fraction", ge=0, le=1, description="fail prepare when "
                                           "the new data changes the answers of more of the previous version's "
                                           "examples")
    allow_changes: bool = _prepare("data.allow_changes", description="accept more changed answers than "
                                   "max_changed_fraction (default of the AllowDataChanges parameter)")
    tokenizer_uri: str | None = Field(default=None, description="tokenizer-only prefix for the prepare step; "
                                                                 "None: the base model's")
    seed: int = _prepare("data.seed")


def _train(key: str, **constraints: Any) -> Any:
    """A field whose default is train.py's for the argument that reads `key` (steps/train/contract.py)."""
    return _step_default("train", key, **constraints)



class LoraConfig(_Strict):
    r: int = _train("training.lora.r", ge=1)
    alpha: int = _train("training.lora.alpha", ge=1)
    dropout: float = _train("training.lora.dropout", ge=0, lt=1)
    target_modules: str = _train("training.lora.target_modules")


_TRAIN_CONTRACT = step_contract("train")  # the choices below are declared there, once


class ContinualConfig(_Strict):
    """Continual-learning strategy (train.py --strategy): a comma list of replay, ewc, l2sp, modular, distill, or
    naive."""

    strategy: str = _train("training.continual.strategy")
    replay_weight: float = _train("training.continual.replay_weight", ge=0)
    replay_budget: float = _train("training.continual.replay_budget", ge=0, description="replayed history per "
                                  "epoch: <= 1 a share of it, > 1 an amount in replay_budget_unit; 1: all of it")
    replay_budget_unit: Literal[_TRAIN_CONTRACT.REPLAY_BUDGET_UNITS] = _train("training.continual.replay_budget_unit")
    replay_selection: Literal[_TRAIN_CONTRACT.REPLAY_SELECTIONS] = _train("training.continual.replay_selection")
    distill_lambda: float = _train("training.continual.distill_lambda", ge=0)
    distill_budget: float = _train("training.continual.distill_budget", ge=0, le=1)
    ewc_lambda: float = _train("training.continual.ewc_lambda", ge=0)
    l2sp_lambda: float = _train("training.continual.l2sp_lambda", ge=0)
    orthogonal_lambda: float = _train("training.continual.orthogonal_lambda", ge=0)
    fisher_samples: int = _train("training.continual.fisher_samples", ge=0,
                                 description="examples for the Fisher stored with each version")

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        """Checked by train.py's own parser (steps/train/contract.py), kept as written."""
        try:
            _TRAIN_CONTRACT.parse_strategy(value)
        except ArgumentTypeError as err:
            raise ValueError(str(err)) from None
        return value


class SpotConfig(_Strict):
    enabled: bool = Field(default=False, description="managed spot training (resumes from checkpoints)")
    max_wait_seconds: int = Field(default=172800, ge=1, description="default of the SpotMaxWaitSeconds parameter")


class TrainingConfig(_Strict):
    instance_type: str = "ml.g5.2xlarge"
    instance_count: int = Field(default=1, ge=1)
    image_uri: str | None = Field(default=None, description="the training image; None: containers/images.yaml's")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    learning_rate: float = _train("training.learning_rate", gt=0)
    epochs: float = _train("training.epochs", gt=0)
    max_steps: int = _train("training.max_steps")
    batch_size: int = _train("training.batch_size", ge=1)
    max_seq_length: int = _train("training.max_seq_length", ge=16)
    seed: int = _train("training.seed")
    quantization: Literal["none", "4bit"] = _train("training.quantization", description="4bit: QLoRA (CUDA instances only)")
    packing: bool = _train("training.packing")
    tokens_per_batch: int = _train("training.tokens_per_batch", ge=0,
                                   description="packing token budget per GPU; 0: batch_size x mean length")
    continual: ContinualConfig = Field(default_factory=ContinualConfig)
    distribution: Literal["torch_distributed", "none"] = Field(
        default="torch_distributed", description="torchrun on every instance, one process per GPU (GPU instances)"
    )
    max_run_seconds: int = Field(default=86400, ge=1)
    spot: SpotConfig = Field(default_factory=SpotConfig)
    checkpoint_s3_uri: str | None = Field(default=None, description="None: <s3 prefix>/checkpoints")
    backend: Literal["sagemaker", "bedrock"] = Field(
        default="sagemaker", description="sagemaker: train.py in a training job; bedrock: a Bedrock model "
        "customization job (training.bedrock; docs/bedrock.md)")
    bedrock: BedrockConfig = Field(default_factory=BedrockConfig)

    @model_validator(mode="after")
    def _backend_can_train(self) -> "TrainingConfig":
        """What the Bedrock backend cannot do is refused here, naming the field (pipelines/bedrock_config.py)."""
        problems = bedrock_problems(self) if self.backend == "bedrock" else []
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _evaluate(key: str, **constraints: Any) -> Any:
    return _step_default("evaluate", key, **constraints)


class GateConfig(_Strict):
    """evaluate.py's gate (steps/evaluate/contract.py); the bounds' defaults are the pipeline's (the step's: none)."""

    metric: str
    higher_is_better: bool = True
    threshold: float
    max_regression: float = Field(default=0.05, ge=0)
    max_forgetting: float = Field(
        default=0.1, ge=0, le=1,
        description="largest share of the re-asked items the previous version knew (its knowledge inventory) that "
                    "the candidate may answer wrong; 1 turns the forgetting check off",
    )


class EvaluationConfig(_Strict):
    instance_type: str = "ml.g5.2xlarge"
    suites: list[str] = Field(
        min_length=1,
        description="each a suite folder or a folder of suites (relative to the config file), an s3:// prefix of "
                    "suites, or the name of a suite in the repository's benchmarks/; the training gate and the "
                    "deploy pipeline's smoke test run the same list",
    )
    lm_eval_tasks: list[str] = Field(default_factory=list, description="lm-eval task names (datasets from the hub)")
    lm_eval_limit: int | None = Field(default=None, ge=1, description="at most this many documents per lm-eval task")
    retention_max_cases: int = _evaluate(
        "evaluation.retention_max_cases", ge=0,
        description="known items of the previous version's knowledge inventory re-asked each run, stratified by data "
                    "version (0: no forgetting check)",
    )
    retention_max_new_cases: int = _evaluate(
        "evaluation.retention_max_new_cases", ge=0,
        description="other inventory items (this version's new examples, earlier unchecked ones) asked each run so the "
                    "next inventory knows what this version knows",
    )
    max_new_tokens: int = _evaluate("evaluation.max_new_tokens", ge=1)
    batch_size: int = _evaluate("evaluation.batch_size", ge=1)
    gate: GateConfig


class StepPoliciesConfig(_Strict):
    """Step caching and retries (pipelines/step_policies.py): training and evaluation are cached on their inputs for
    `cache_expire_after` (an ISO 8601 duration; None: no caching); job steps retry capacity, throttling and
    internal errors."""

    cache_expire_after: str | None = Field(default="P30D", description="e.g. P30D, T12h; None: no step caching")
    retry_max_attempts: int = Field(default=3, ge=1, le=20)
    retry_interval_seconds: int = Field(default=60, ge=1, le=43200)
    retry_backoff_rate: float = Field(default=2.0, ge=1.0)

    @field_validator("cache_expire_after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        from pipelines.local.caching import parse_duration

        if value is not None:
            parse_duration(value)  # ValueError names the accepted forms
        return value


class ProcessingConfig(_Strict):
    instance_type: str = "ml.m5.xlarge"
    image_uri: str | None = Field(default=None, description="the processing steps' image; None: containers/images.yaml's")


ENDPOINT_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"


class FleetAlarmConfig(_Strict):
    """Alarms created for each new production fleet; in ALARM during baking they roll the update back. SageMaker's
    endpoint metrics are per minute: the period is a multiple of 60 s, and period x evaluation_periods must fit in
    the bake (pipelines/deploy/aws_readiness.py refuses a config where it does not)."""

    max_error_rate: float = Field(default=0.05, lt=1, description="5XX share of calls; negative: no alarm")
    max_latency_ms: float = Field(default=2000.0, description="average ModelLatency; negative: no alarm")
    period_seconds: int = Field(default=60, ge=10)
    evaluation_periods: int = Field(default=1, ge=1)


class AutoScalingConfig(_Strict):
    min_instances: int = Field(default=1, ge=1)
    max_instances: int = Field(default=0, ge=0, description="0: no auto scaling")
    invocations_per_instance: float = Field(default=100.0, gt=0, description="target invocations per instance/minute")


class ProductionConfig(_Strict):
    """The production endpoint: updated blue/green after staging passed its smoke test and benchmarks."""

    enabled: bool = True
    endpoint_name: str = Field(pattern=ENDPOINT_NAME)
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = Field(default=2, ge=1, description="2: the smallest fleet a canary (at most half of it) "
                                                             "or a linear shift can be taken from")
    capture_percent: int = Field(default=100, ge=0, le=100)
    traffic_routing: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"] = "CANARY"
    canary_percent: int = Field(default=50, ge=1, le=100, description="capacity share of the new fleet that takes "
                                                                      "traffic first, at most 50 (one of two instances)")
    linear_step_percent: int = Field(default=25, ge=1, le=100, description="capacity share per step, 10 to 50")
    bake_seconds: int = Field(default=600, ge=0, le=3600, description="WaitIntervalInSeconds after each shift; at "
                                                                      "least alarms.period_seconds x evaluation_periods")
    termination_wait_seconds: int = Field(default=0, ge=0, le=3600)
    alarms: FleetAlarmConfig = Field(default_factory=FleetAlarmConfig)
    autoscaling: AutoScalingConfig = Field(default_factory=AutoScalingConfig)


class MonitoringConfig(_Strict):
    """Drift monitoring of the captured traffic (the monitor pipeline; thresholds: steps/monitor/baseline.py)."""

    endpoint_name: str | None = Field(default=None, description="endpoint watched; None: production (else staging)")
    since_hours: float = Field(default=24.0, gt=0)
    schedule: str = "rate(1 day)"
    namespace: str = "continuum/Monitoring"
    thresholds: dict[str, float] = Field(default_factory=dict)


class DeployConfig(_Strict):
    endpoint_name: str = Field(pattern=ENDPOINT_NAME, description="the staging endpoint")
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = Field(default=1, ge=1)
    capture_percent: int = Field(default=100, ge=0, le=100)
    capture_kms_key_id: str = Field(default="", description="KMS key for captured data; empty: the bucket's default")
    inference_image_uri: str | None = Field(default=None,
                                            description="the model package's serving image; None: containers/images.yaml's")
    smoke_prompts: list[str] = Field(default_factory=lambda: ["What is your return policy?"], min_length=1)
    benchmark_gate_threshold: float | None = Field(
        default=None, description="live-endpoint bar on evaluation.gate.metric; None: evaluation.gate.threshold")
    production: ProductionConfig | None = None
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig, description="the endpoint's request limits")

    @property
    def monitored_endpoint(self) -> str:
        if self.monitoring.endpoint_name:
            return self.monitoring.endpoint_name
        return self.production.endpoint_name if self.production and self.production.enabled else self.endpoint_name


UI_ROLES = ("viewer", "model_engineer", "deployment_manager", "admin")
UiRole = Literal["viewer", "model_engineer", "deployment_manager", "admin"]


class UiConfig(_Strict):
    """`continuum ui` locally: who the person at the dashboard is (on AWS, IAM decides: pipelines/ui/roles.py)."""

    role: UiRole = Field(default="admin", description="the local user's role when no --user is given")
    users: dict[str, UiRole] = Field(default_factory=dict, description="name -> role; `continuum ui --user NAME`")
    port: int = Field(default=8750, ge=0, le=65535)


class FeedbackConfig(_Strict):
    """Corrections people make on the dashboard (pipelines/feedback.py): trained on, and checked by the gate."""

    threshold: float | None = Field(default=0.5, ge=0, le=1, description="the feedback suite's bar on mean token_f1 "
                                    "(a gate check, as a suite.yaml threshold); None: reported, not gated")


class NotificationsConfig(_Strict):
    """Where gate failures, versions waiting for approval, alarms, drift verdicts and rollbacks are sent."""

    sns_topic_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:sns:",
                                      description="SNS topic (the project stack's) to publish to, with --aws")
    webhook_url: str | None = Field(default=None, pattern=r"^https?://",
                                    description="Slack-compatible incoming webhook (JSON {text})")
    timeout_seconds: float = Field(default=5.0, gt=0)


class BudgetConfig(_Strict):
    """Spending limits (pipelines/cost.py): a training run whose estimate passes a limit stops before training."""

    per_run_usd: float | None = Field(default=None, gt=0, description="largest estimated cost of one training run")
    per_month_usd: float | None = Field(default=None, gt=0, description="largest month-to-date run cost plus this "
                                        "run's estimate")
    endpoints_monthly_warn_usd: float | None = Field(default=None, gt=0, description="warn when the endpoints' "
                                                     "projected monthly cost passes this")


class CostConfig(_Strict):
    """Prices: pipelines/prices.yaml (dated, one region), overridden per usage and instance type here."""

    prices: dict[Literal["training", "processing", "hosting"], dict[str, float]] = Field(
        default_factory=dict, description="usage -> instance type -> USD per instance-hour")
    budget: BudgetConfig = Field(default_factory=BudgetConfig)


class TrackingConfig(_Strict):
    """MLflow experiment tracking (pipelines/tracking.py; the `tracking` extra)."""

    mlflow_uri: str | None = Field(default=None, description="a SageMaker MLflow tracking server ARN, a server URL, "
                                   "a file: folder or sqlite: store; None: no tracking")
    experiment: str | None = Field(default=None, description="MLflow experiment; None: the project's name")


class Config(_Strict):
    project: ProjectConfig
    model: ModelConfig
    data: DataConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    processing: ProcessingConfig = Field(default_factory=ProcessingConfig)
    step_policies: StepPoliciesConfig = Field(default_factory=StepPoliciesConfig)
    evaluation: EvaluationConfig
    deploy: DeployConfig
    ui: UiConfig = Field(default_factory=UiConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @property
    def training_pipeline_name(self) -> str:
        return f"{self.project.name}-training"

    @property
    def deploy_pipeline_name(self) -> str:
        return f"{self.project.name}-deploy"

    @property
    def s3_prefix(self) -> str:
        return f"s3://{self.project.bucket}/{self.project.name}"



def _format_errors(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid config"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"  {field}: {item['msg']}")
    return "\n".join(lines)


def config_path_for(path: Path | str | None) -> Path:
    """The config a command uses: `path`, else $CONTINUUM_CONFIG, else ./continuum.yaml, else the demo's."""
    if path:
        return Path(path)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    project = Path(PROJECT_CONFIG_FILE)
    return project if project.is_file() else DEMO_CONFIG_PATH


def load_config(path: Path | str | None = None, overrides: dict | None = None) -> Config:
    """Read and validate a config file (the demo's embedded config when `path` is None).

    Local paths in it (data.source, evaluation.suites entries, a model.base_model starting with ./ or ../)
    are relative to the config file's folder.
    """
    config_path = Path(path) if path else DEMO_CONFIG_PATH
    try:
        raw = yaml.safe_load(_config_text(config_path))
    except FileNotFoundError as exc:
        raise ConfigError(f"{config_path}: config file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not valid YAML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{config_path}: YAML nested too deeply to be a config") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: expected a mapping at the top level, got {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    _anchor_paths(raw, config_path.resolve().parent)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(config_path, exc)) from exc


MAX_CONFIG_BYTES = 1024 * 1024  # a config is a page of YAML; a bigger file is the wrong file


def _config_text(config_path: Path) -> str:
    """The config file's text, checked before parsing: a regular file, at most MAX_CONFIG_BYTES, UTF-8 text."""
    if config_path.exists() and not config_path.is_file():
        raise ConfigError(f"{config_path}: not a regular file (a folder, FIFO or device); give the config's YAML file")
    size = config_path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{config_path}: {size:,} bytes, over the {MAX_CONFIG_BYTES:,}-byte limit of a config "
                          "file; is it the right file?")
    data = config_path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{config_path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): a "
                          "config is a YAML text file; is it the right file?") from None
    if "\x00" in text:
        raise ConfigError(f"{config_path}: holds NUL bytes (a binary file): a config is a YAML text file")
    return text


def _set_dotted(raw: dict, dotted: str, value: object) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _is_uri(text: str) -> bool:
    return "://" in text


def _anchored(value: object, folder: Path) -> object:
    """A relative local path made absolute against `folder`; URIs, absolute paths and non-strings unchanged."""
    if not isinstance(value, str) or not value or _is_uri(value):
        return value
    path = Path(value).expanduser()
    return value if path.is_absolute() else str(folder / path)


def _anchor_paths(raw: dict, folder: Path) -> None:
    """Resolve the config's local paths against the config file's folder (suite names stay names)."""
    data, model, evaluation = (raw.get(key) if isinstance(raw.get(key), dict) else {} for key in
                               ("data", "model", "evaluation"))
    if "source" in data:
        data["source"] = _anchored(data["source"], folder)
    base = model.get("base_model")
    if isinstance(base, str) and base.startswith(("./", "../")):
        model["base_model"] = _anchored(base, folder)
    if isinstance(evaluation.get("suites"), list):
        evaluation["suites"] = [_anchored(item, folder) if isinstance(item, str) and ("/" in item or item.startswith("."))
                                else item for item in evaluation["suites"]]
