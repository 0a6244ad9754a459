"""The training pipeline's model steps with training.backend: bedrock (docs/bedrock.md).

TrainModel, EvaluateModel and RegisterModel keep their names and places (after PrepareData and the budget guard,
EvaluateModel's gate before RegisterModel); only their executor differs from the SageMaker path:
- TrainModel: `bedrock_train.py train` in a processing job: the prepared splits in Bedrock's JSONL format, a
  model customization job with the LearningRate/Epochs parameters and training.batch_size, waited for, then the
  custom model made invocable (on-demand deployment or provisioned throughput); PropertyFile BedrockModel.
- EvaluateModel: the same evaluate.py, suites, inventory and gate, asking the custom model (and the baseline:
  training.bedrock.baseline_model_id, else the base model) through bedrock-runtime; no validation loss.
- RegisterModel: `bedrock_train.py register`: a model package with SourceUri = the custom model ARN, the
  evaluation as ModelMetrics and the Bedrock and data lineage as customer metadata.
"""
from __future__ import annotations

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep

from pipelines import s3_layout
from pipelines.config import Config
from pipelines.paths import STEPS_DIR
from pipelines.processors import step_processor
from pipelines.step_contracts import config_argv, configured, parameter_name
from pipelines.training.evaluate_step import EVALUATION_OUTPUT, INPUT_ROOT, INVENTORY_OUTPUT, REPORT_HTML
from pipelines.training.parameters import TrainingParameters

BEDROCK_OUTPUT = "bedrock"
REGISTERED_OUTPUT = "registered"
OUTPUT_ROOT = "/opt/ml/processing/output"
NAME_ROOM = 40  # of jobName's / customModelName's 63 characters: the project's share (then -ft-<execution id>)


def _input(name: str, source: str | PipelineVariable) -> ProcessingInput:
    return ProcessingInput(input_name=name, source=source, destination=f"{INPUT_ROOT}/{name}")


def run_name(config: Config) -> Join:
    """`<project>-ft-<execution id>`: the customization job's and the custom model's name, one per execution."""
    project = config.project.name[:NAME_ROOM].rstrip("-")
    return Join(on="-", values=[project, "ft", ExecutionVariables.PIPELINE_EXECUTION_ID])


def bedrock_train_step(config: Config, session: PipelineSession, params: TrainingParameters,
                       prepare: ProcessingStep) -> tuple[ProcessingStep, PropertyFile]:
    """TrainModel: the Bedrock customization job and the custom model's inference (bedrock.json)."""
    trained = PropertyFile(name="BedrockModel", output_name=BEDROCK_OUTPUT, path="bedrock.json")
    prepared = prepare.properties.ProcessingOutputConfig.Outputs
    output_dir = f"{OUTPUT_ROOT}/{BEDROCK_OUTPUT}"
    arguments = ["train", *config_argv("bedrock_train:train", config, {
        "train_dir": f"{INPUT_ROOT}/train",
        "validation_dir": f"{INPUT_ROOT}/validation",
        "data_report_dir": f"{INPUT_ROOT}/report",
        "output_dir": output_dir,
        "data_s3_uri": Join(on="/", values=[config.s3_prefix, "bedrock", ExecutionVariables.PIPELINE_EXECUTION_ID]),
        "job_name": run_name(config),
        "custom_model_name": run_name(config),
        "epochs": params.epochs.to_string(),
        "learning_rate": params.learning_rate.to_string(),
    })]
    processor = step_processor(config, session, "bedrock-train", config.processing.instance_type)
    step_args = processor.run(
        code="bedrock_train.py",
        source_dir=str(STEPS_DIR),
        inputs=[_input("train", prepared["train"].S3Output.S3Uri),
                _input("validation", prepared["validation"].S3Output.S3Uri),
                _input("report", prepared["report"].S3Output.S3Uri)],
        outputs=[ProcessingOutput(output_name=BEDROCK_OUTPUT, source=output_dir)],
        arguments=arguments,
    )
    return ProcessingStep(name="TrainModel", step_args=step_args, property_files=[trained]), trained


def bedrock_evaluate_step(config: Config, session: PipelineSession, params: TrainingParameters,
                          prepare: ProcessingStep, train: ProcessingStep, trained: PropertyFile,
                          resolve: ProcessingStep, resolved: PropertyFile) -> tuple[ProcessingStep, PropertyFile]:
    """EvaluateModel on the custom model through bedrock-runtime: evaluate.py's suites, inventory and gate."""
    evaluation = PropertyFile(name="EvaluationReport", output_name=EVALUATION_OUTPUT, path="evaluation.json")
    settings, bedrock = config.evaluation, config.training.bedrock
    prepared = prepare.properties.ProcessingOutputConfig.Outputs

    def from_resolved(path: str) -> JsonGet:
        return JsonGet(step_name=resolve.name, property_file=resolved, json_path=path)

    by_parameter = {parameter.name: parameter for parameter in params.as_list()}
    arguments: list[str | PipelineVariable] = [
        "--baseline-dir=", "--validation-dir=",  # both models are Bedrock's; a remote model has no loss to measure
        *(f"--{name.replace('_', '-')}-dir={INPUT_ROOT}/{name}" for name in
          ("train", "data_report", "inventory", "benchmarks")),
        *config_argv("evaluate", config, {
            "output_dir": f"{OUTPUT_ROOT}/evaluation",
            "inventory_output_dir": f"{OUTPUT_ROOT}/inventory",
            "candidate_model_id": JsonGet(step_name=train.name, property_file=trained, json_path="inference_model_id"),
            "baseline_model_id": bedrock.baseline_model_id or bedrock.base_model_identifier,
            "baseline_version": from_resolved("version").to_string(),
            "baseline_model_package_arn": from_resolved("model_package_arn"),
            **{candidate.name: by_parameter[parameter_name(candidate)].to_string()
               for candidate in configured("evaluate") if candidate.parameter},
        }),
        *([] if settings.gate.higher_is_better else ["--gate-lower-is-better"]),
    ]
    processor = step_processor(config, session, "evaluate", config.processing.instance_type)
    step_args = processor.run(
        code="evaluate.py",
        source_dir=str(STEPS_DIR),
        inputs=[_input("train", prepared["train"].S3Output.S3Uri),
                _input("data_report", prepared["report"].S3Output.S3Uri),
                _input("inventory", from_resolved("inventory_uri")),
                _input("benchmarks", s3_layout.benchmarks_uri(config))],
        outputs=[ProcessingOutput(output_name=EVALUATION_OUTPUT, source=f"{OUTPUT_ROOT}/evaluation"),
                 ProcessingOutput(output_name=INVENTORY_OUTPUT, source=f"{OUTPUT_ROOT}/inventory")],
        arguments=arguments,
    )
    return ProcessingStep(name="EvaluateModel", step_args=step_args, property_files=[evaluation]), evaluation


def bedrock_register_step(config: Config, session: PipelineSession, params: TrainingParameters,
                          prepare: ProcessingStep, prepare_report: PropertyFile, train: ProcessingStep,
                          evaluate: ProcessingStep, resolve: ProcessingStep, resolved: PropertyFile) -> ProcessingStep:
    """RegisterModel: the custom model as a version of the model package group (bedrock_train/register.py)."""
    evaluation_dir = evaluate.properties.ProcessingOutputConfig.Outputs[EVALUATION_OUTPUT].S3Output.S3Uri
    output_dir = f"{OUTPUT_ROOT}/{REGISTERED_OUTPUT}"
    arguments = ["register", *config_argv("bedrock_train:register", config, {
        "bedrock_dir": f"{INPUT_ROOT}/{BEDROCK_OUTPUT}",
        "output_dir": output_dir,
        "approval_status": params.approval_status,
        "evaluation_uri": Join(on="/", values=[evaluation_dir, "evaluation.json"]),
        "evaluation_report_uri": Join(on="/", values=[evaluation_dir, REPORT_HTML]),
        "inventory_uri": evaluate.properties.ProcessingOutputConfig.Outputs[INVENTORY_OUTPUT].S3Output.S3Uri,
        "train_data_uri": prepare.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri,
        "training_data_uri": Join(on="/", values=[s3_layout.data_uri(config), JsonGet(
            step_name=prepare.name, property_file=prepare_report, json_path="input_digest")]),
        "parent_model_package_arn": JsonGet(step_name=resolve.name, property_file=resolved,
                                            json_path="model_package_arn"),
        "description": f"{config.project.name}: Bedrock fine-tune gated on {config.evaluation.gate.metric}",
    })]
    processor = step_processor(config, session, "bedrock-register", config.processing.instance_type)
    step_args = processor.run(
        code="bedrock_train.py",
        source_dir=str(STEPS_DIR),
        inputs=[_input(BEDROCK_OUTPUT,
                       train.properties.ProcessingOutputConfig.Outputs[BEDROCK_OUTPUT].S3Output.S3Uri)],
        outputs=[ProcessingOutput(output_name=REGISTERED_OUTPUT, source=output_dir)],
        arguments=arguments,
    )
    return ProcessingStep(name="RegisterModel", step_args=step_args)


def bedrock_steps(config: Config, session: PipelineSession, params: TrainingParameters, prepare: ProcessingStep,
                  prepare_report: PropertyFile, resolve: ProcessingStep, resolved: PropertyFile
                  ) -> tuple[ProcessingStep, ProcessingStep, PropertyFile, ProcessingStep]:
    """(TrainModel, EvaluateModel, its EvaluationReport, RegisterModel) for training.backend: bedrock."""
    train, trained = bedrock_train_step(config, session, params, prepare)
    evaluate, evaluation = bedrock_evaluate_step(config, session, params, prepare, train, trained, resolve, resolved)
    register = bedrock_register_step(config, session, params, prepare, prepare_report, train, evaluate, resolve,
                                     resolved)
    return train, evaluate, evaluation, register
