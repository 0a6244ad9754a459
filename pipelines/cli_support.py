"""Helpers shared by `continuum`'s commands: target backend, parameter overrides, a run's or a rollback's outcome."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pipelines.backend import Backend, aws_backend, local_backend
from pipelines.config import Config

if TYPE_CHECKING:
    from pipelines.deploy.stages import Stage


ERROR_CHARS = 400


def describe_error(exc: BaseException) -> str:
    """An exception for the terminal: the message of the errors commands raise for people (LookupError,
    ValueError, a file's OSError) as it is; an AWS call's operation, code and message; anything else as its
    type and first line (at most ERROR_CHARS characters) and where to see the traceback."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, (LookupError, ValueError, OSError)):
        return str(exc)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{exc.operation_name}: {error.get('Code', '?')}: {error.get('Message', '')}"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found: set AWS_PROFILE (or pass --profile), or run without --aws"
    text = str(exc) if isinstance(exc, BotoCoreError) else f"{type(exc).__name__}: {exc}"
    lines = text.strip().splitlines() or [type(exc).__name__]
    first = lines[0] if len(lines[0]) <= ERROR_CHARS else lines[0][:ERROR_CHARS] + "..."
    return f"{first}\n(`continuum --verbose ...` shows the traceback)"


def parse_parameters(pairs: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--param expects NAME=VALUE, got {pair!r}")
        parsed[name] = value
    return parsed


def pipeline_parameters(kind: str, config: Config) -> list[Any]:
    """The SDK parameters a pipeline declares, without building its steps (tests check they are the built
    pipeline's)."""
    from pipelines.sdk import prepare_sdk_environment

    prepare_sdk_environment()
    if kind == "training":
        from pipelines.training.parameters import training_parameters
        from pipelines.training.prepare_step import retrain_min_change_parameter

        return [*training_parameters(config).as_list(), retrain_min_change_parameter(config)]
    if kind == "monitor":
        from pipelines.deploy.monitor_pipeline import monitor_parameters

        return monitor_parameters(config).as_list()
    from pipelines.deploy.parameters import deploy_parameters, production_parameters

    declared = deploy_parameters(config).as_list()
    if config.deploy.production is not None:
        declared += production_parameters(config.deploy.production).as_list()
    return declared


def check_parameters(kind: str, config: Config, overrides: dict[str, str]) -> None:
    """ValueError naming the first `--param` the pipeline does not declare or whose value is not of its type,
    before anything is staged."""
    declared = {parameter.name: parameter for parameter in pipeline_parameters(kind, config)}
    for name, value in overrides.items():
        parameter = declared.get(name)
        if parameter is None:
            close = [known for known in sorted(declared) if known.lower() == name.lower()]
            hint = f"did you mean {close[0]}? " if close else ""
            raise ValueError(f"--param {name}={value}: the {kind} pipeline has no parameter {name!r}; {hint}its "
                             f"parameters: {', '.join(sorted(declared))}")
        kind_name = parameter.parameter_type.value
        try:
            if kind_name == "Integer":
                int(value)
            elif kind_name == "Float":
                float(value)
            elif kind_name == "Boolean" and value.lower() not in ("true", "false"):
                raise ValueError
        except ValueError:
            raise ValueError(f"--param {name}={value}: {name} is a {kind_name} parameter; give a value of that "
                             "type") from None
        allowed = getattr(parameter, "enum_values", None)
        if allowed and value not in allowed:
            raise ValueError(f"--param {name}={value}: {name} must be one of {', '.join(allowed)}")


def backend_for(args: argparse.Namespace, config: Config) -> Backend:
    if getattr(args, "aws", False):
        return aws_backend(config, getattr(args, "profile", None))
    return local_backend(config, Path(args.home) if getattr(args, "home", None) else None)


def local_home(args: argparse.Namespace) -> Path:
    """The local home (--home, else $CONTINUUM_HOME or ./.continuum): the cache lives there, with --aws too."""
    from pipelines.local.home import continuum_home

    if getattr(args, "home", None):
        home = Path(args.home).expanduser().resolve()
        home.mkdir(parents=True, exist_ok=True)
        return home
    return continuum_home()


def add_target(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--local", action="store_true", help="embedded local runtime (default)")
    group.add_argument("--aws", action="store_true", help="SageMaker in your AWS account")
    parser.add_argument("--profile", help="AWS profile (with --aws)")


def report_outcome(outcome: Any) -> int:
    """Print a run's outcome; exit 0 when it succeeded (or, on AWS without waiting, started)."""
    print(f"{outcome.pipeline_name} {outcome.execution_id}: {outcome.status}")
    if outcome.failure_reason:
        print(f"reason: {outcome.failure_reason}")
    return 0 if outcome.status in ("Succeeded", "Executing") else 1


def roll_back(backend: Backend, config: Config, stages: list[Stage], to_version: int | None, reason: str,
              profile: str | None = None) -> int:
    """Roll the stages back and print the outcome (also `continuum monitor --on-drift rollback`)."""
    from pipelines.deploy.rollback import RollbackError, rollback

    try:
        result = rollback(backend, config, stages, to_version, reason, profile)
    except RollbackError as error:
        print(f"rollback: {error}")
        return 1
    from pipelines.notify import notify

    notify(backend, config, "rollback", f"rolled back from version {result.from_version} to {result.to_version}",
           reason or "continuum rollback")
    stages_text = ", ".join(f"{name} ({info['status']})" for name, info in result.stages.items())
    print(f"rolled back {stages_text} from version {result.from_version} to {result.to_version} in {result.seconds:.1f}s; "
          f"version {result.from_version} is Rejected")
    return 0
