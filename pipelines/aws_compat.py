"""Console scripts with the interface of AWS's SageMaker project templates.

`get-pipeline-definition` writes a definition JSON; `run-pipeline` upserts and starts a pipeline on
SageMaker (what buildspec.yml calls), after refusing a config that cannot act on AWS
(pipelines/deploy/aws_readiness.py) and staging what every run reads at the parameters' defaults
(pipelines/staging.py: suites, markers, base model; the data is the incoming/ prefix). `--kwargs` takes dotted
config overrides as JSON, e.g. `{"project.bucket": "my-bucket", "project.region": "eu-west-1"}`.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from pipelines.config import ConfigError, load_config


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", choices=["training", "deploy"], default="training")
    parser.add_argument("--config", help="config YAML (default: the embedded default)")
    parser.add_argument("--kwargs", default="{}", help="JSON object of dotted config overrides")
    parser.add_argument("--local", action="store_true", help="use the local stand-ins instead of AWS")


def _load(args: argparse.Namespace):
    try:
        overrides = json.loads(args.kwargs)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--kwargs is not valid JSON: {exc}") from exc
    if not isinstance(overrides, dict):
        raise SystemExit("--kwargs must be a JSON object of dotted config keys")
    return load_config(args.config, overrides)


def get_pipeline_definition_main(argv: Sequence[str] | None = None) -> int:
    from pipelines.backend import aws_backend, local_backend
    from pipelines.definitions import definition_json

    parser = argparse.ArgumentParser(prog="get-pipeline-definition", description="Write a pipeline definition JSON.")
    _common(parser)
    parser.add_argument("--file-name", "-f", help="write here instead of stdout")
    args = parser.parse_args(argv)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    backend = local_backend(config) if args.local else aws_backend(config)
    text = json.dumps(definition_json(args.pipeline, config, backend), indent=2)
    if args.file_name:
        with open(args.file_name, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        print(text)
    return 0


def run_pipeline_main(argv: Sequence[str] | None = None) -> int:
    from pipelines.backend import aws_backend
    from pipelines.execution import run_pipeline

    parser = argparse.ArgumentParser(prog="run-pipeline", description="Upsert and start a pipeline on SageMaker.")
    _common(parser)
    parser.add_argument("--role-arn", help="pipeline execution role (default: project.role_arn)")
    parser.add_argument("--tags", default="[]", help='JSON list of {"Key","Value"} added to project.tags')
    parser.add_argument("--parameters", default="{}", help="JSON object of pipeline parameter overrides")
    parser.add_argument("--wait", action="store_true")
    args = parser.parse_args(argv)
    overrides = json.loads(args.kwargs)
    if args.role_arn:
        overrides["project.role_arn"] = args.role_arn
    extra_tags = {item["Key"]: item["Value"] for item in json.loads(args.tags)}
    args.kwargs = json.dumps(overrides)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if extra_tags:
        config = config.model_copy(update={"project": config.project.model_copy(update={"tags": {**config.project.tags, **extra_tags}})})
    from pipelines.deploy.aws_readiness import check_for_aws
    from pipelines.staging import ensure_bucket, stage_benchmarks, stage_pipeline_inputs

    try:
        check_for_aws(config, args.config or "config", training=args.pipeline == "training")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    backend = aws_backend(config)
    if args.pipeline == "training":  # what every run reads at its defaults; the data: the incoming/ prefix
        stage_pipeline_inputs(backend, config)
    else:
        ensure_bucket(backend, config.project.bucket)
        stage_benchmarks(backend, config)
    outcome = run_pipeline(args.pipeline, config, backend, json.loads(args.parameters), wait=args.wait)
    print(json.dumps({"pipeline": outcome.pipeline_name, "execution": outcome.execution_id, "status": outcome.status}))
    return 0 if outcome.status in ("Succeeded", "Executing") else 1
