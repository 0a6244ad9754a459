"""Processing step: raw company data → train/validation JSONL + report.json (data version)."""
from __future__ import annotations

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.functions import JsonGet
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep

from pipelines.config import Config
from pipelines.paths import STEPS_DIR
from pipelines.processors import step_processor
from pipelines.training.parameters import TrainingParameters


def prepare_step(
    config: Config, session: PipelineSession, params: TrainingParameters, resolve: ProcessingStep, resolved: PropertyFile
) -> tuple[ProcessingStep, PropertyFile]:
    """New data + a replay sample of the previous approved version's training split."""
    report = PropertyFile(name="DataReport", output_name="report", path="report.json")
    processor = step_processor(config, session, "prepare", params.processing_instance_type)
    step_args = processor.run(
        code="prepare.py",
        source_dir=str(STEPS_DIR),
        inputs=[
            ProcessingInput(input_name="data", source=params.input_data_uri, destination="/opt/ml/processing/input/data"),
            ProcessingInput(
                input_name="replay",
                source=JsonGet(step_name=resolve.name, property_file=resolved, json_path="replay_data_uri"),
                destination="/opt/ml/processing/input/replay",
            ),
        ],
        outputs=[
            ProcessingOutput(output_name=name, source=f"/opt/ml/processing/output/{name}")
            for name in ("train", "validation", "report")
        ],
        arguments=[
            "--input-dir", "/opt/ml/processing/input/data",
            "--output-dir", "/opt/ml/processing/output",
            "--replay-dir", "/opt/ml/processing/input/replay",
            "--replay-fraction", params.replay_fraction.to_string(),
            "--validation-fraction", str(config.data.validation_fraction),
            "--seed", str(config.data.seed),
            "--min-examples", str(config.data.min_examples),
        ],
    )
    return ProcessingStep(name="PrepareData", step_args=step_args, property_files=[report]), report
