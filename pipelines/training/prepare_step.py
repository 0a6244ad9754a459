"""Processing step: raw company data → train/validation/test JSONL + report.json (data version, retrain score).

The data is InputDataUri (default: the incoming/ prefix, pipelines/s3_layout.py). With no data file there (only
its marker) prepare writes a report with `input_files` 0 and CheckInputData ends the run in the FailStep
NoInputData, naming the prefix. Prepare versions the raw files it read: a copy under <s3 prefix>/data/<content
digest>/ (report.json's input_digest; the model package's training_data_uri). Then the ConditionStep after it:
training runs only when report.json's `retrain.score` reaches the `RetrainMinChange` parameter (default `data.retrain_min_change`, 0 = always); otherwise the
execution ends Succeeded without training. The `AllowDataChanges` parameter (default
`data.allow_changes`) lets one execution accept an export that changes more of the previous
version's answers than `data.max_changed_fraction` (else the step fails, listing them).
"""
from __future__ import annotations

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.parameters import ParameterFloat
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.step_collections import StepCollection
from sagemaker.workflow.steps import ProcessingStep, Step

from pipelines import s3_layout
from pipelines.config import Config
from pipelines.paths import STEPS_DIR
from pipelines.processors import step_processor
from pipelines.step_policies import retried_job
from pipelines.training.parameters import TrainingParameters, step_parameter
from pipelines.training.prepare_arguments import data_arguments

INPUT_ROOT = "/opt/ml/processing/input"
OUTPUT_ROOT = "/opt/ml/processing/output"
OUTPUTS = ("train", "validation", "test", "report")
RAW_OUTPUT = "data"


def retrain_min_change_parameter(config: Config) -> ParameterFloat:
    """Below this retrain score (changed share / distribution shift vs the previous version) training is skipped."""
    return step_parameter(config, "prepare", "retrain_min_change", ParameterFloat)


def prepare_step(
    config: Config,
    session: PipelineSession,
    params: TrainingParameters,
    resolve: ProcessingStep,
    resolved: PropertyFile,
    retrain_min_change: ParameterFloat,
) -> tuple[ProcessingStep, PropertyFile]:
    """New data + a replay sample of the previous approved version's training split (which carries its manifest)."""
    report = PropertyFile(name="DataReport", output_name="report", path="report.json")
    processor = step_processor(config, session, "prepare", params.processing_instance_type)
    step_args = processor.run(
        code="prepare.py",
        source_dir=str(STEPS_DIR),
        inputs=[
            ProcessingInput(input_name="data", source=params.input_data_uri, destination=f"{INPUT_ROOT}/data"),
            ProcessingInput(
                input_name="replay",
                source=JsonGet(step_name=resolve.name, property_file=resolved, json_path="replay_data_uri"),
                destination=f"{INPUT_ROOT}/replay",
            ),
            ProcessingInput(input_name="tokenizer", source=config.data.tokenizer_uri or params.base_model_uri,
                            destination=f"{INPUT_ROOT}/tokenizer"),
        ],
        outputs=[*(ProcessingOutput(output_name=name, source=f"{OUTPUT_ROOT}/{name}") for name in OUTPUTS),
                 # this round's raw files, under data/<content digest>/ (report.json's input_digest)
                 ProcessingOutput(output_name=RAW_OUTPUT, source=f"{OUTPUT_ROOT}/{RAW_OUTPUT}",
                                  destination=s3_layout.data_uri(config))],
        arguments=data_arguments(config, {
            "input_dir": f"{INPUT_ROOT}/data",
            "output_dir": OUTPUT_ROOT,
            "empty_input": "report",
            "raw_output_dir": f"{OUTPUT_ROOT}/{RAW_OUTPUT}",
            "replay_dir": f"{INPUT_ROOT}/replay",
            "tokenizer_dir": f"{INPUT_ROOT}/tokenizer",
            "replay_fraction": params.replay_fraction.to_string(),
            "retrain_min_change": retrain_min_change.to_string(),
            "allow_changes": params.allow_data_changes.to_string(),
        }),
    )
    return ProcessingStep(name="PrepareData", step_args=step_args, property_files=[report], **retried_job(config)), report


def data_changed_step(
    prepare: ProcessingStep, report: PropertyFile, retrain_min_change: ParameterFloat,
    if_steps: list[Step | StepCollection],
) -> ConditionStep:
    """Run `if_steps` (training onwards) only when the data changed enough; else end here, Succeeded."""
    score = JsonGet(step_name=prepare.name, property_file=report, json_path="retrain.score")
    return ConditionStep(
        name="CheckDataChanged",
        conditions=[ConditionGreaterThanOrEqualTo(left=score, right=retrain_min_change)],
        if_steps=if_steps,
        else_steps=[],
    )


def input_data_step(
    prepare: ProcessingStep, report: PropertyFile, params: TrainingParameters, if_steps: list[Step | StepCollection],
) -> ConditionStep:
    """Go on (`if_steps`) when prepare found data files; else fail the run with what to do about it."""
    files = JsonGet(step_name=prepare.name, property_file=report, json_path="input_files")
    message = Join(on="", values=["No data in ", params.input_data_uri, "/ (InputDataUri): drop this round's data "
                                  "files there (JSONL, JSON, CSV, TSV, text, Markdown, Parquet) and start the pipeline "
                                  "again."])
    return ConditionStep(
        name="CheckInputData",
        conditions=[ConditionGreaterThanOrEqualTo(left=files, right=1)],
        if_steps=if_steps,
        else_steps=[FailStep(name="NoInputData", error_message=message)],
    )
