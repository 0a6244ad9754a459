"""SDK v3 probe (docs/sdk.md): build a pipeline with every construct continuum uses, twice, and compare.

Run in a throwaway virtualenv with `sagemaker` 3.x and moto (never in the project's .venv):
    SAGEMAKER_VALIDATE_ROLE=false AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x python docs/sdk_v3_probe.py
Prints which constructs build, whether the two definitions are identical, and their first differences.
"""
import difflib
import hashlib
import json
import os
import tempfile
import traceback
from pathlib import Path

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
CODE = Path(tempfile.mkdtemp(prefix="sdkv3-probe-"))
for name, text in {"prepare.py": "print('prepare')\n", "train.py": "print('train')\n", "requirements.txt": "numpy\n"}.items():
    (CODE / name).write_text(text)
import boto3
from moto import mock_aws

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13-cpu-amzn2023-sagemaker"
ROLE = "arn:aws:iam::123456789012:role/x"

def build():
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.parameters import ParameterString, ParameterFloat
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.core.workflow.functions import JsonGet, Join
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.processing import FrameworkProcessor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
    from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    session = PipelineSession(boto_session=boto3.Session(region_name="us-east-1"), default_bucket="bkt")
    instance = ParameterString("ProcessingInstanceType", default_value="ml.m5.xlarge")
    threshold = ParameterFloat("GateThreshold", default_value=0.5)
    data = ParameterString("InputDataUri", default_value="s3://bkt/incoming")
    results = {}
    # 1. processing with source code (FrameworkProcessor, runproc.sh + requirements.txt) and a PropertyFile
    try:
        proc = FrameworkProcessor(image_uri=IMAGE, role=ROLE, instance_type=instance, instance_count=1,
                                  base_job_name="c-prepare", sagemaker_session=session, command=["python"])
        report = PropertyFile(name="Report", output_name="report", path="report.json")
        args = proc.run(code="prepare.py", source_dir=str(CODE), inputs=[ProcessingInput(input_name="data", s3_input=ProcessingS3Input(s3_uri=data, local_path="/opt/ml/processing/input/data", s3_data_type="S3Prefix", s3_input_mode="File"))],
                        outputs=[ProcessingOutput(output_name="report", s3_output=ProcessingS3Output(s3_uri="s3://bkt/out/report", local_path="/opt/ml/processing/report", s3_upload_mode="EndOfJob"))], arguments=["--x", data])
        prepare = ProcessingStep(name="PrepareData", step_args=args, property_files=[report])
        results["processing+PropertyFile"] = "ok"
    except Exception as e:
        results["processing+PropertyFile"] = f"{type(e).__name__}: {e}"; traceback.print_exc(); prepare = None
    # 2. training with source code, torch_distributed, checkpoints, parameterised hyperparameters
    try:
        from sagemaker.train.model_trainer import ModelTrainer
        from sagemaker.core.training.configs import SourceCode, Compute, CheckpointConfig, InputData
        from sagemaker.train.distributed import Torchrun
        trainer = ModelTrainer(training_image=IMAGE, role=ROLE, sagemaker_session=session, base_job_name="c-train",
                               source_code=SourceCode(source_dir=str(CODE), entry_script="train.py", requirements="requirements.txt"),
                               distributed=Torchrun(),
                               compute=Compute(instance_type=ParameterString("TrainingInstanceType", default_value="ml.g5.2xlarge"), instance_count=1),
                               hyperparameters={"learning_rate": threshold},
                               checkpoint_config=CheckpointConfig(s3_uri="s3://bkt/ckpt", local_path="/opt/ml/checkpoints"))
        targs = trainer.train(input_data_config=[InputData(channel_name="train", data_source=prepare.properties.ProcessingOutputConfig.Outputs["report"].S3Output.S3Uri if prepare else "s3://bkt/x")])
        train = TrainingStep(name="TrainModel", step_args=targs)
        results["training"] = "ok"
    except Exception as e:
        results["training"] = f"{type(e).__name__}: {e}"; traceback.print_exc(); train = None
    # 3. registration with metrics and customer metadata
    try:
        from sagemaker.serve.model_builder import ModelBuilder
        from sagemaker.core.model_metrics import ModelMetrics, MetricsSource
        mb = ModelBuilder(s3_model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts if train else "s3://bkt/m.tar.gz",
                          image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.6.0-transformers5.5.3-gpu-py312-cu124-ubuntu22.04",
                          role_arn=ROLE, sagemaker_session=session)
        rargs = mb.register(model_package_group_name="grp", content_types=["application/json"], response_types=["application/json"],
                            inference_instances=["ml.g5.xlarge"], transform_instances=["ml.g5.xlarge"], approval_status="PendingManualApproval",
                            model_metrics=ModelMetrics(model_statistics=MetricsSource(s3_uri="s3://bkt/evaluation.json", content_type="application/json")),
                            customer_metadata_properties={"data_version": JsonGet(step_name="PrepareData", property_file="Report", json_path="data_version")})
        register = ModelStep(name="RegisterModel", step_args=rargs)
        results["register+metrics"] = "ok"
    except Exception as e:
        results["register+metrics"] = f"{type(e).__name__}: {e}"; traceback.print_exc(); register = None
    # 4. condition on JsonGet + FailStep with a Join message
    try:
        fail = FailStep(name="FailThreshold", error_message=Join(on=" ", values=["below", threshold]))
        cond = ConditionStep(name="CheckThreshold", conditions=[ConditionGreaterThanOrEqualTo(
            left=JsonGet(step_name="PrepareData", property_file=report, json_path="metrics.x.value"), right=threshold)],
            if_steps=[s for s in [train, register] if s], else_steps=[fail])
        results["condition+JsonGet+FailStep"] = "ok"
    except Exception as e:
        results["condition+JsonGet+FailStep"] = f"{type(e).__name__}: {e}"; traceback.print_exc(); cond = None
    steps = [s for s in [prepare, cond] if s]
    pipe = Pipeline(name="probe", parameters=[instance, threshold, data], steps=steps, sagemaker_session=session)
    return pipe, results

with mock_aws():
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bkt")
    docs = []
    for attempt in range(2):
        pipe, results = build()
        try:
            docs.append(pipe.definition())
        except Exception as e:
            traceback.print_exc(); results["definition"] = f"{type(e).__name__}: {e}"
    print(json.dumps(results, indent=1))
    if len(docs) == 2:
        print("identical:", docs[0] == docs[1], [hashlib.sha256(d.encode()).hexdigest()[:12] for d in docs])
        if docs[0] != docs[1]:
            a, b = json.dumps(json.loads(docs[0]), indent=1).splitlines(), json.dumps(json.loads(docs[1]), indent=1).splitlines()
            print("\n".join(list(difflib.unified_diff(a, b, lineterm=""))[:60]))
