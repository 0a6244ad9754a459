"""Which AWS actions continuum needs, in one place.

- `iam_action`: the IAM action behind one API call (botocore's service and operation names).
- `STEP_ACTIONS`: what each step script calls (they run as the SageMaker execution role), and
  `PIPELINE_SERVICE_ACTIONS`: what SageMaker Pipelines does with that role for the definitions' step types.
- `COMMAND_ACTIONS`: what each `continuum` command calls with `--aws` (with the person's credentials).
- `PERSONA_COMMANDS`: the commands of the product's four roles (pipelines/config.py `UiRole`).

`infra/template.yaml` grants exactly these: the execution role `EXECUTION_ROLE_ACTIONS`, each persona's managed
policy the actions of its commands (tests/test_least_privilege.py); the calls a local end-to-end run records
(pipelines/local/api_server.py `record_call`) must be among them (tests/test_permissions_observed.py).
"""
from __future__ import annotations

from typing import Final

# botocore service id (either spelling) → IAM service prefix
_PREFIX: Final = {"sagemaker": "sagemaker", "sagemaker-runtime": "sagemaker", "s3": "s3", "sts": "sts",
                  "cloudwatch": "cloudwatch", "application-autoscaling": "application-autoscaling",
                  "application-auto-scaling": "application-autoscaling", "events": "events", "iam": "iam",
                  "kms": "kms", "ecr": "ecr", "service-quotas": "servicequotas", "sns": "sns", "logs": "logs",
                  "bedrock": "bedrock",
                  "bedrock-runtime": "bedrock"}
# S3 operations whose IAM action has another name
_S3: Final = {"ListBuckets": "s3:ListAllMyBuckets", "HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket",
              "ListObjects": "s3:ListBucket", "HeadObject": "s3:GetObject", "CreateMultipartUpload": "s3:PutObject",
              "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject", "DeleteObjects": "s3:DeleteObject",
              "GetBucketEncryption": "s3:GetEncryptionConfiguration"}
# bedrock-runtime operations authorized by another action (Converse: the model's InvokeModel)
_BEDROCK: Final = {"Converse": "bedrock:InvokeModel", "ConverseStream": "bedrock:InvokeModelWithResponseStream"}
# Calls every principal may make: STS answers GetCallerIdentity without any permission.
NO_PERMISSION_NEEDED: Final = frozenset({("sts", "GetCallerIdentity")})
# What a local run does that the project stack does instead on AWS: the local home starts without the bucket,
# so staging creates it; on AWS the stack's ArtifactsBucket exists (`continuum doctor --aws` checks it).
STACK_PROVIDES: Final = frozenset({"s3:CreateBucket"})


def iam_action(service: str, operation: str) -> str | None:
    """The IAM action that authorizes ``operation`` of ``service`` (None: no permission needed)."""
    if (service, operation) in NO_PERMISSION_NEEDED:
        return None
    prefix = _PREFIX.get(service)
    if prefix is None:
        raise KeyError(f"no IAM prefix known for service {service!r} (add it to pipelines/permissions.py)")
    if prefix == "s3" and operation in _S3:
        return _S3[operation]
    if prefix == "bedrock" and operation in _BEDROCK:
        return _BEDROCK[operation]
    return f"{prefix}:{operation}"


def _actions(*names: str) -> frozenset[str]:
    return frozenset(names)


# -- what runs as the SageMaker execution role --------------------------------------------------------------------
STEP_ACTIONS: Final = {
    "resolve": _actions("sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage"),
    "prepare": _actions(),
    "train": _actions(),
    # a Bedrock model (training.backend bedrock) is asked through bedrock-runtime Converse
    "evaluate": _actions("bedrock:InvokeModel"),
    # training.backend bedrock: the customization job (passing the Bedrock service role), the custom model's
    # inference for evaluation, and its registration (no SageMaker model step: a processing job registers it)
    "bedrock_train": _actions(
        "bedrock:CreateModelCustomizationJob", "bedrock:GetModelCustomizationJob",
        "bedrock:CreateProvisionedModelThroughput", "bedrock:GetProvisionedModelThroughput",
        "bedrock:CreateCustomModelDeployment", "bedrock:GetCustomModelDeployment", "iam:PassRole",
        "sagemaker:CreateModelPackage"),
    # models and endpoint configs of earlier versions stay (a rollback deploys them again); the first auto scaling
    # registration creates Application Auto Scaling's service-linked role for SageMaker endpoints
    "deploy": _actions(
        "sagemaker:DescribeModelPackage", "sagemaker:CreateModel", "sagemaker:CreateEndpointConfig",
        "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint",
        "iam:PassRole", "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms",
        "application-autoscaling:RegisterScalableTarget", "application-autoscaling:DeregisterScalableTarget",
        "application-autoscaling:DescribeScalableTargets", "application-autoscaling:PutScalingPolicy",
        "iam:CreateServiceLinkedRole"),
    "smoke_test": _actions("sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"),
    "monitor": _actions("cloudwatch:PutMetricData", "cloudwatch:GetMetricStatistics", "cloudwatch:PutMetricAlarm",
                        "cloudwatch:DescribeAlarms"),
}
# SageMaker Pipelines acting with the pipeline role (= the execution role) for each step type of the definitions.
PIPELINE_SERVICE_ACTIONS: Final = {
    "Processing": _actions("sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
                           "sagemaker:StopProcessingJob", "sagemaker:AddTags", "sagemaker:ListTags", "iam:PassRole"),
    "Training": _actions("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
                         "sagemaker:AddTags", "sagemaker:ListTags", "iam:PassRole"),
    "RegisterModel": _actions("sagemaker:CreateModelPackageGroup", "sagemaker:DescribeModelPackageGroup",
                              "sagemaker:CreateModelPackage", "sagemaker:AddTags"),
    "Model": _actions("sagemaker:CreateModel", "sagemaker:AddTags", "iam:PassRole"),
    "Condition": _actions(),
    "Fail": _actions(),
}
# What every job and endpoint needs from its role whatever it runs: channels and outputs in the project bucket
# (encrypted with the project key), logs, the images.
JOB_INFRASTRUCTURE_ACTIONS: Final = _actions(
    "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListBucket",
    "s3:GetBucketLocation", "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom",
    "kms:ReEncryptTo", "kms:DescribeKey", "kms:CreateGrant", "logs:CreateLogGroup", "logs:CreateLogStream",
    "logs:PutLogEvents", "logs:DescribeLogStreams", "ecr:GetAuthorizationToken", "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
# With SubnetIds: SageMaker's network interfaces in the project's subnets (granted only then).
VPC_ACTIONS: Final = _actions(
    "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups")
EXECUTION_ROLE_ACTIONS: Final = frozenset().union(
    *STEP_ACTIONS.values(), *PIPELINE_SERVICE_ACTIONS.values(), JOB_INFRASTRUCTURE_ACTIONS)

# -- what each command calls with the person's credentials --------------------------------------------------------
_READ_REGISTRY = _actions("sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage",
                          "sagemaker:DescribeModelPackageGroup")
_READ_OBJECTS = _actions("s3:GetObject", "s3:ListBucket", "kms:Decrypt", "kms:DescribeKey")
_WRITE_OBJECTS = _actions("s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:GetBucketLocation",
                          "kms:Encrypt", "kms:GenerateDataKey")
# SDK v2 builds a definition: ListBuckets (its default-bucket check) and PutObject (step code).
_BUILD_DEFINITION = _actions("s3:ListAllMyBuckets", "s3:PutObject", "kms:Encrypt", "kms:GenerateDataKey")
_RUN_PIPELINE = _actions("sagemaker:CreatePipeline", "sagemaker:UpdatePipeline", "sagemaker:ListTags",
                         "sagemaker:AddTags", "sagemaker:StartPipelineExecution", "sagemaker:DescribePipelineExecution",
                         "sagemaker:ListPipelineExecutionSteps", "iam:PassRole")
# What an ended execution ran (pipelines/execution_jobs.py): its jobs' billable seconds (pipelines/cost.py) and
# what MLflow records of it (pipelines/tracking.py, which also reads the training log).
_READ_RUNS = _actions("sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineExecutionSteps",
                      "sagemaker:ListPipelineExecutions", "sagemaker:ListPipelineParametersForExecution",
                      "sagemaker:DescribeTrainingJob", "sagemaker:DescribeProcessingJob")
_ENDPOINT_COST = _actions("sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig")
_PUT_RULE = _actions("events:PutRule", "events:PutTargets", "events:TagResource", "iam:PassRole")
# pipelines/notify.py: publish to notifications.sns_topic_arn, record the note (and "sent once" markers) in S3
_NOTIFY = _actions("sns:Publish", "s3:GetObject", "s3:PutObject", "kms:Encrypt", "kms:GenerateDataKey")

COMMAND_ACTIONS: Final = {
    # read only
    "models list": _READ_REGISTRY,
    "status": _READ_REGISTRY | _READ_OBJECTS | _actions("sagemaker:DescribeEndpoint", "cloudwatch:GetMetricStatistics"),
    # the dashboard's reads (pipelines/ui/reads.py); what a screen changes is the matching command's actions
    "ui": _READ_REGISTRY | _READ_OBJECTS | _actions(
        "sagemaker:DescribeEndpoint", "cloudwatch:GetMetricStatistics", "cloudwatch:DescribeAlarms",
        "sagemaker:ListPipelineExecutions", "sagemaker:DescribePipelineExecution",
        "sagemaker:ListPipelineExecutionSteps", "sagemaker:DescribePipelineDefinitionForExecution"),
    "lineage": _READ_REGISTRY | _READ_OBJECTS,
    "report": _READ_REGISTRY | _READ_OBJECTS,
    "download": _READ_REGISTRY | _READ_OBJECTS,
    "compare": _READ_REGISTRY | _READ_OBJECTS,
    "try": _READ_REGISTRY | _READ_OBJECTS,
    "benchmarks validate": _READ_OBJECTS,
    # data, training, benchmarks
    "prepare": _READ_OBJECTS,
    "definition": _BUILD_DEFINITION | _READ_REGISTRY | _READ_OBJECTS,
    "run": (_BUILD_DEFINITION | _RUN_PIPELINE | _READ_REGISTRY | _READ_OBJECTS | _WRITE_OBJECTS | _NOTIFY | _READ_RUNS
            | _actions("logs:FilterLogEvents")),
    "cost": _READ_RUNS | _READ_OBJECTS | _ENDPOINT_COST,
    "schedule": _PUT_RULE,
    # approvals, deployments, monitoring
    "models approve": _READ_REGISTRY | _actions("sagemaker:UpdateModelPackage"),
    "models reject": _READ_REGISTRY | _actions("sagemaker:UpdateModelPackage"),
    "deploy": _BUILD_DEFINITION | _RUN_PIPELINE | _READ_REGISTRY | _READ_OBJECTS | _WRITE_OBJECTS | _ENDPOINT_COST,
    "deploy-trigger": _PUT_RULE,
    "invoke": _actions("sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"),
    # rollback runs deploy.py on this machine with the person's credentials
    "rollback": _READ_REGISTRY | _READ_OBJECTS | STEP_ACTIONS["deploy"] | _NOTIFY,
    "monitor": (_BUILD_DEFINITION | _RUN_PIPELINE | _READ_REGISTRY | _READ_OBJECTS | _WRITE_OBJECTS | _PUT_RULE | _NOTIFY
                | _actions("cloudwatch:DescribeAlarms")),
    "teardown": _actions("sagemaker:ListEndpoints", "sagemaker:DeleteEndpoint"),
    # the preflight
    "doctor": _actions("iam:GetRole", "s3:GetBucketLocation", "s3:GetEncryptionConfiguration",
                       "s3:GetBucketVersioning", "kms:DescribeKey", "ecr:DescribeImages",
                       "servicequotas:ListServiceQuotas"),
}

# CodeBuild's role: buildspec.yml runs get-pipeline-definition and run-pipeline (stages the inputs and suites,
# upserts, starts; no waiting), reading the source artifact and writing its logs.
BUILD_ACTIONS: Final = (_BUILD_DEFINITION | _READ_OBJECTS | _WRITE_OBJECTS | _actions(
    "sagemaker:CreatePipeline", "sagemaker:UpdatePipeline", "sagemaker:ListTags", "sagemaker:AddTags",
    "sagemaker:StartPipelineExecution", "iam:PassRole", "s3:GetObjectVersion", "logs:CreateLogStream",
    "logs:PutLogEvents"))

VIEWER_COMMANDS: Final = ("models list", "status", "ui", "lineage", "report", "download", "compare", "try",
                          "benchmarks validate", "cost")
PERSONA_COMMANDS: Final = {
    "viewer": VIEWER_COMMANDS,
    "model_engineer": VIEWER_COMMANDS + ("prepare", "definition", "run", "schedule"),
    "deployment_manager": VIEWER_COMMANDS + ("models approve", "models reject", "deploy", "deploy-trigger", "invoke",
                                             "rollback", "monitor", "teardown"),
    "admin": tuple(COMMAND_ACTIONS),
}
# The template's managed policy of each persona.
PERSONA_POLICIES: Final = {"viewer": "ViewerPolicy", "model_engineer": "ModelEngineerPolicy",
                           "deployment_manager": "DeploymentManagerPolicy", "admin": "AdminPolicy"}


def persona_actions(persona: str) -> frozenset[str]:
    """Every action the persona's commands call."""
    return frozenset().union(*(COMMAND_ACTIONS[command] for command in PERSONA_COMMANDS[persona]))
