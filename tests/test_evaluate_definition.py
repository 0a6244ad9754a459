"""The evaluate step, the gate and the report attachment in the training pipeline definition (built against moto)."""
from __future__ import annotations

from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from pipelines.backend import Backend
from pipelines.config import load_config
from pipelines.definitions import definition_json
from pipelines.local.runtime import plan_steps

CONFIG = load_config(overrides={
    "evaluation.suites": ["company_facts", "s3://company-benchmarks/suites"],
    "evaluation.lm_eval_tasks": ["arc_easy", "hellaswag"],
    "evaluation.lm_eval_limit": 50,
})


@pytest.fixture(scope="module")
def steps() -> Iterator[dict[str, dict[str, Any]]]:
    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=CONFIG.project.bucket)
        definition = definition_json("training", CONFIG, Backend("aws", session))
        yield {name: planned.spec for name, planned in plan_steps(definition).items()}


def _json_get(path: str, step: str = "EvaluateModel", file: str = "EvaluationReport") -> dict[str, Any]:
    return {"Std:JsonGet": {"PropertyFile": {"Get": f"Steps.{step}.PropertyFiles.{file}"}, "Path": path}}


def test_evaluate_inputs_and_arguments(steps: dict[str, dict[str, Any]]) -> None:
    arguments = steps["EvaluateModel"]["Arguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in arguments["ProcessingInputs"] if i["InputName"] != "code"}
    sources = {name: item["S3Uri"] for name, item in inputs.items()}
    assert sources["inventory"] == _json_get("inventory_uri", "ResolveBaseline", "ResolvedModel")
    assert "test" not in sources  # held-out splits measure generalization, not what was learned
    assert sources["baseline"] == _json_get("model_data_url", "ResolveBaseline", "ResolvedModel")
    assert sources["train"] == {"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}
    assert sources["data_report"] == {"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['report'].S3Output.S3Uri"}
    assert sources["benchmarks"] == f"{CONFIG.s3_prefix}/benchmarks"
    assert "custom_benchmarks" not in sources  # every suite of evaluation.suites is staged under benchmarks/
    assert all(item["LocalPath"] == f"/opt/ml/processing/input/{name}" for name, item in inputs.items())
    args = arguments["AppSpecification"]["ContainerArguments"]
    for name in ("model", "baseline", "validation", "train", "data-report", "inventory", "benchmarks"):
        assert f"--{name}-dir=/opt/ml/processing/input/{name.replace('-', '_')}" in args
    value = {flag: args[args.index(flag) + 1] for flag in (
        "--lm-eval-tasks", "--lm-eval-limit", "--retention-max-cases", "--retention-max-new-cases",
        "--baseline-model-package-arn", "--baseline-version", "--gate-metric")}
    assert "--suites" not in args and value["--lm-eval-tasks"] == "arc_easy,hellaswag"  # all staged suites run
    assert value["--lm-eval-limit"] == "50"
    assert value["--retention-max-cases"] == str(CONFIG.evaluation.retention_max_cases)
    assert value["--retention-max-new-cases"] == str(CONFIG.evaluation.retention_max_new_cases)
    assert value["--baseline-model-package-arn"] == _json_get("model_package_arn", "ResolveBaseline", "ResolvedModel")
    assert value["--baseline-version"] == {"Std:Join": {"On": "", "Values": [
        _json_get("version", "ResolveBaseline", "ResolvedModel")]}}
    assert value["--gate-metric"] == CONFIG.evaluation.gate.metric
    outputs = {o["OutputName"]: o["S3Output"]["LocalPath"] for o in arguments["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["inventory"] == "/opt/ml/processing/output/inventory"
    assert args[args.index("--inventory-output-dir") + 1] == outputs["inventory"]


def test_gate_conditions_read_the_evaluate_steps_checks_and_fail_with_their_messages(
        steps: dict[str, dict[str, Any]]) -> None:
    def passed(check: str) -> dict[str, Any]:
        return {"Type": "Equals", "LeftValue": _json_get(f"gate.checks.{check}.passed"), "RightValue": True}

    def message(*checks: str) -> dict[str, Any]:
        values: list[Any] = ["Gate failed:"]
        for index, check in enumerate(checks):
            values += [*(["|"] if index else []), _json_get(f"gate.checks.{check}.message")]
        return {"Std:Join": {"On": " ", "Values": values}}

    assert steps["CheckForgetting"]["Arguments"]["Conditions"] == [passed("forgetting")]
    assert steps["CheckQualityThreshold"]["Arguments"]["Conditions"] == [passed("threshold")]
    assert steps["CheckNoRegression"]["Arguments"]["Conditions"] == [passed("regression"), passed("suite_thresholds")]
    assert steps["FailForgetting"]["Arguments"]["ErrorMessage"] == message("forgetting")
    assert steps["FailQualityThreshold"]["Arguments"]["ErrorMessage"] == message("threshold")
    assert steps["FailRegression"]["Arguments"]["ErrorMessage"] == message("regression", "suite_thresholds")
    # the checks honour each execution's bounds: the parameters reach the evaluate step as its arguments
    arguments = steps["EvaluateModel"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    for flag, parameter in (("--gate-threshold", "GateThreshold"), ("--gate-max-regression", "MaxRegression"),
                            ("--gate-max-forgetting", "MaxForgetting")):
        assert arguments[arguments.index(flag) + 1] == {
            "Std:Join": {"On": "", "Values": [{"Get": f"Parameters.{parameter}"}]}}, flag


def test_registered_version_carries_the_report(steps: dict[str, dict[str, Any]]) -> None:
    metadata = steps["RegisterModel-RegisterModel"]["Arguments"]["CustomerMetadataProperties"]
    assert metadata["evaluation_report_uri"] == {"Std:Join": {"On": "/", "Values": [
        {"Get": "Steps.EvaluateModel.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}, "report.html"]}}
