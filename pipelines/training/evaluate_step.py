"""Processing step: candidate vs previous approved version on held-out data and benchmark suites.

Inputs: the candidate artifact, the baseline (resolved.json's model_data_url), the prepared
splits and data report, the suites the CLI staged from evaluation.suites (every one is run) and the
previous approved version's knowledge inventory (resolved.json's inventory_uri), whose known items
are re-asked. Outputs `evaluation`: evaluation.json (PropertyFile), cases.jsonl, report.html;
`inventory`: this version's knowledge inventory (recorded by the register step as inventory_uri).
"""
from __future__ import annotations

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.functions import JsonGet
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from pipelines import s3_layout
from pipelines.config import Config
from pipelines.paths import STEPS_DIR
from pipelines.processors import step_processor
from pipelines.step_contracts import config_argv, configured, parameter_name
from pipelines.step_policies import cached_job
from pipelines.training.parameters import TrainingParameters

EVALUATION_OUTPUT = "evaluation"
INVENTORY_OUTPUT = "inventory"
REPORT_HTML = "report.html"
INPUT_ROOT = "/opt/ml/processing/input"


def _input(name: str, source: str | PipelineVariable) -> ProcessingInput:
    return ProcessingInput(input_name=name, source=source, destination=f"{INPUT_ROOT}/{name}")


def evaluate_step(
    config: Config,
    session: PipelineSession,
    params: TrainingParameters,
    prepare: ProcessingStep,
    train: TrainingStep,
    resolve: ProcessingStep,
    resolved: PropertyFile,
) -> tuple[ProcessingStep, PropertyFile]:
    evaluation = PropertyFile(name="EvaluationReport", output_name=EVALUATION_OUTPUT, path="evaluation.json")
    settings = config.evaluation
    gate = settings.gate
    processor = step_processor(config, session, "evaluate", settings.instance_type)
    prepared = prepare.properties.ProcessingOutputConfig.Outputs

    def from_resolved(path: str) -> JsonGet:
        return JsonGet(step_name=resolve.name, property_file=resolved, json_path=path)

    inputs = [
        _input("model", train.properties.ModelArtifacts.S3ModelArtifacts),
        _input("baseline", from_resolved("model_data_url")),
        _input("validation", prepared["validation"].S3Output.S3Uri),
        _input("train", prepared["train"].S3Output.S3Uri),
        _input("data_report", prepared["report"].S3Output.S3Uri),
        _input("inventory", from_resolved("inventory_uri")),
        _input("benchmarks", s3_layout.benchmarks_uri(config)),
    ]
    by_parameter = {parameter.name: parameter for parameter in params.as_list()}
    arguments: list[str | PipelineVariable] = [
        *(f"--{name.replace('_', '-')}-dir={INPUT_ROOT}/{name}" for name in
          ("model", "baseline", "validation", "train", "data_report", "inventory", "benchmarks")),
        # The rest in the contract's order (steps/evaluate/contract.py): each argument with a config key, as its
        # pipeline parameter where it is one, and the ones wired here.
        *config_argv("evaluate", config, {
            "output_dir": "/opt/ml/processing/output/evaluation",
            "inventory_output_dir": "/opt/ml/processing/output/inventory",
            "baseline_version": from_resolved("version").to_string(),
            "baseline_model_package_arn": from_resolved("model_package_arn"),
            **{candidate.name: by_parameter[parameter_name(candidate)].to_string()
               for candidate in configured("evaluate") if candidate.parameter},
        }),
        *([] if gate.higher_is_better else ["--gate-lower-is-better"]),
    ]
    if settings.lm_eval_tasks:
        arguments += ["--lm-eval-tasks", ",".join(settings.lm_eval_tasks)]
    if settings.lm_eval_limit:
        arguments += ["--lm-eval-limit", str(settings.lm_eval_limit)]
    step_args = processor.run(
        code="evaluate.py",
        source_dir=str(STEPS_DIR),
        inputs=inputs,
        outputs=[ProcessingOutput(output_name=EVALUATION_OUTPUT, source="/opt/ml/processing/output/evaluation"),
                 ProcessingOutput(output_name=INVENTORY_OUTPUT, source="/opt/ml/processing/output/inventory")],
        arguments=arguments,
    )
    return ProcessingStep(name="EvaluateModel", step_args=step_args, property_files=[evaluation], **cached_job(config)), evaluation
