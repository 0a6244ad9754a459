"""Processing step: candidate vs previous approved version on held-out data and benchmark suites."""
from __future__ import annotations

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.functions import JsonGet
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from pipelines.config import Config
from pipelines.paths import STEPS_DIR
from pipelines.processors import step_processor
from pipelines.training.parameters import TrainingParameters

EVALUATION_OUTPUT = "evaluation"


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
    gate = config.evaluation.gate
    processor = step_processor(config, session, "evaluate", config.evaluation.instance_type)
    validation_uri = prepare.properties.ProcessingOutputConfig.Outputs["validation"].S3Output.S3Uri
    step_args = processor.run(
        code="evaluate.py",
        source_dir=str(STEPS_DIR),
        inputs=[
            ProcessingInput(
                input_name="model",
                source=train.properties.ModelArtifacts.S3ModelArtifacts,
                destination="/opt/ml/processing/input/model",
            ),
            ProcessingInput(
                input_name="baseline",
                source=JsonGet(step_name=resolve.name, property_file=resolved, json_path="model_data_url"),
                destination="/opt/ml/processing/input/baseline",
            ),
            ProcessingInput(input_name="validation", source=validation_uri, destination="/opt/ml/processing/input/validation"),
            ProcessingInput(
                input_name="benchmarks",
                source=f"{config.s3_prefix}/benchmarks",
                destination="/opt/ml/processing/input/benchmarks",
            ),
        ],
        outputs=[ProcessingOutput(output_name=EVALUATION_OUTPUT, source="/opt/ml/processing/output/evaluation")],
        arguments=[
            *(f"--{name}-dir=/opt/ml/processing/input/{name}" for name in ("model", "baseline", "validation", "benchmarks")),
            "--output-dir", "/opt/ml/processing/output/evaluation",
            "--suites", ",".join(config.evaluation.suites),
            "--max-new-tokens", str(config.evaluation.max_new_tokens),
            "--gate-metric", gate.metric,
            "--gate-threshold", params.gate_threshold.to_string(),
            "--gate-max-regression", params.max_regression.to_string(),
            *([] if gate.higher_is_better else ["--gate-lower-is-better"]),
        ],
    )
    return ProcessingStep(name="EvaluateModel", step_args=step_args, property_files=[evaluation]), evaluation
