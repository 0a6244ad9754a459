"""infra/template.yaml: cfn-lint and checkov clean (each suppression justified in place), its security settings,
what buildspec.yml needs from CodeBuild, and the stack deployed into moto's CloudFormation (the resources moto
creates are read back; CodeBuild and CodePipeline, which moto cannot create, are checked in the template)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import warnings
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
import yaml
from moto import mock_aws

from pipelines.iam_policies import Stack, load_template

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = REPO / "infra" / "template.yaml"
TEMPLATE = load_template(TEMPLATE_PATH)
RESOURCES = TEMPLATE["Resources"]
REGION = "eu-west-1"
PARAMETERS = {"SageMakerProjectName": "acme-llm", "SageMakerProjectId": "p-abc123def456",
              "CodeStarConnectionArn": "arn:aws:codestar-connections:eu-west-1:123456789012:connection/"
                                       "0a1b2c3d-aaaa-bbbb-cccc-0123456789ab",
              "RepositoryFullName": "acme/llm", "TrainingScheduleState": "ENABLED"}
# Resource types moto's CloudFormation cannot create (it warns and fails any GetAtt on them; FACTS.md "Checked
# 2026-12-05"); the test leaves them, and what references them, out of the moto stack.
MOTO_CANNOT_CREATE = {"AWS::CodeBuild::Project", "AWS::CodePipeline::Pipeline"}
# Types moto reports CREATE_COMPLETE without creating anything: their properties are asserted from the template.
MOTO_DOES_NOT_APPLY = {"AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy", "AWS::SageMaker::ModelPackageGroup"}


def _skips() -> list[tuple[str, dict[str, str]]]:
    return [(logical, skip) for logical, resource in RESOURCES.items()
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])]


def test_cfn_lint_is_clean() -> None:
    from cfnlint.api import lint_file

    matches = lint_file(TEMPLATE_PATH)
    assert not matches, "\n".join(str(m) for m in matches)


def test_every_suppression_is_justified_in_place() -> None:
    skips = _skips()
    assert skips, "the template suppresses checkov checks; this test must see them"
    for logical, skip in skips:
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]) and len(skip.get("comment", "")) > 60, (logical, skip)
    lines = TEMPLATE_PATH.read_text(encoding="utf-8").splitlines()
    ignores = [i for i, line in enumerate(lines) if re.match(r"\s*- [EW]\d{4}", line)]
    assert ignores, "the template ignores cfn-lint checks; this test must see them"
    for index in ignores:  # a comment on the line or right above it says why
        assert "#" in lines[index] or lines[index - 1].strip().startswith("#"), lines[index]


CHECKOV = Path(os.environ.get("CHECKOV", REPO / ".venv" / "checkov" / "bin" / "checkov"))


def _checkov() -> str:
    """checkov lives in a virtualenv of its own (its pins conflict with sagemaker's and pytest's): made by
    infra/make_checkov_env.sh, which the README's test command runs."""
    if not CHECKOV.is_file():
        pytest.fail(f"checkov not found at {CHECKOV}: run infra/make_checkov_env.sh (or set $CHECKOV)")
    return str(CHECKOV)


def test_checkov_is_clean_with_only_the_justified_skips() -> None:
    done = subprocess.run([_checkov(), "-f", str(TEMPLATE_PATH), "--framework", "cloudformation", "--skip-download",
                           "-o", "json"], capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(done.stdout)
    summary, results = report["summary"], report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results.get("failed_checks", [])]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, failed
    assert summary["skipped"] == len(_skips()), "a skip in the template that checkov no longer needs: remove it"
    # checkov silently passes over a policy it cannot parse (a Fn::If inside Statement): every policy is scanned
    scanned = {c["resource"].split(".", 1)[1] for kind in ("passed_checks", "skipped_checks")
               for c in results.get(kind, []) if c["resource"].startswith("AWS::IAM::")}
    stack = Stack(TEMPLATE, PARAMETERS)
    expected = {k for k in stack.policy_resources() if stack.exists(k)}
    expected -= {k for k, r in RESOURCES.items() if r["Type"] == "AWS::IAM::ManagedPolicy"
                 and all(s.effect == "Deny" for s in stack.policy_statements(k))}
    assert expected <= scanned, f"checkov did not scan {sorted(expected - scanned)}"


def test_the_project_name_parameter_is_sagemaker_projects_own() -> None:
    name = TEMPLATE["Parameters"]["SageMakerProjectName"]
    assert (name["MinLength"], name["MaxLength"], name["AllowedPattern"]) == (1, 32, "^[a-zA-Z](-*[a-zA-Z0-9])*")
    assert "SageMakerProjectId" in TEMPLATE["Parameters"]


def test_storage_and_keys_are_locked_down() -> None:
    bucket = RESOURCES["ArtifactsBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["KmsKey", "Arn"]}}
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    (tls,) = RESOURCES["ArtifactsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (tls["Effect"], tls["Action"], tls["Condition"]) == ("Deny", "s3:*", {"Bool": {"aws:SecureTransport": "false"}})
    assert RESOURCES["KmsKey"]["Properties"]["EnableKeyRotation"] is True
    assert RESOURCES["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "KmsKey"}
    assert RESOURCES["BuildLogGroup"]["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["KmsKey", "Arn"]}
    assert RESOURCES["CodeBuildProject"]["Properties"]["EncryptionKey"] == {"Fn::GetAtt": ["KmsKey", "Arn"]}
    assert RESOURCES["BuildPipeline"]["Properties"]["ArtifactStore"]["EncryptionKey"]["Type"] == "KMS"


def test_codebuild_runs_buildspec_yml_with_every_variable_it_reads() -> None:
    project = Stack(TEMPLATE, PARAMETERS, region=REGION).resolve(RESOURCES["CodeBuildProject"]["Properties"])
    assert project["Source"] == {"Type": "CODEPIPELINE", "BuildSpec": "buildspec.yml"}
    provided = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    assert {"SAGEMAKER_PROJECT_NAME", "SAGEMAKER_PROJECT_ID", "SAGEMAKER_PIPELINE_ROLE_ARN", "ARTIFACT_BUCKET"} <= set(provided)
    assert provided["SAGEMAKER_PROJECT_NAME"] == "acme-llm" and provided["ARTIFACT_BUCKET"] == "sagemaker-project-p-abc123def456-eu-west-1"
    buildspec_text = (REPO / "buildspec.yml").read_text(encoding="utf-8")
    buildspec = yaml.safe_load(buildspec_text)
    commands = "\n".join(str(c) for phase in buildspec["phases"].values() for c in phase.get("commands", []))
    read = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", commands))
    own = set(buildspec.get("env", {}).get("variables", {})) | set(re.findall(r"export ([A-Z][A-Z0-9_]*)=", commands))
    codebuild_sets = {v for v in read if v.startswith("CODEBUILD_")} | {"AWS_REGION", "AWS_DEFAULT_REGION", "HOME", "PATH"}
    optional = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", commands))
    missing = read - own - codebuild_sets - optional - set(provided)
    assert not missing, f"buildspec.yml reads {sorted(missing)}, which the CodeBuild project does not set"


def test_the_build_pipeline_takes_either_repository_kind() -> None:
    for kind, provider, configuration in (
            ({"RepositoryType": "CodeStarConnection"}, "CodeStarSourceConnection", {"FullRepositoryId": "acme/llm"}),
            ({"RepositoryType": "CodeCommit", "CodeCommitRepositoryName": "llm"}, "CodeCommit", {"RepositoryName": "llm"})):
        stack = Stack(TEMPLATE, {**PARAMETERS, **kind})
        source, build = stack.resolve(RESOURCES["BuildPipeline"]["Properties"]["Stages"])
        (action,) = source["Actions"]
        assert action["ActionTypeId"]["Provider"] == provider and configuration.items() <= action["Configuration"].items()
        assert build["Actions"][0]["ActionTypeId"]["Provider"] == "CodeBuild"
        assert stack.exists("CodeCommitPushRule") == (provider == "CodeCommit")


def _logical_refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found: set[str] = set()
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!][^}]*)\}", text)}
                found |= _logical_refs(value)
            else:
                found |= _logical_refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_logical_refs(item) for item in node)) if node else set()
    return set()


def moto_template() -> tuple[dict[str, Any], set[str]]:
    """The template without what moto cannot create (and what references it); returns it and the dropped ids."""
    template = json.loads(json.dumps(TEMPLATE))
    resources = template["Resources"]
    # moto's KMS expects tags as TagKey/TagValue and fails on CloudFormation's Key/Value (moto 5.2.6)
    resources["KmsKey"]["Properties"].pop("Tags")
    dropped = {k for k, v in resources.items() if v["Type"] in MOTO_CANNOT_CREATE}
    while more := {k for k, v in resources.items() if k not in dropped and _logical_refs(v) & dropped}:
        dropped |= more
    for logical in dropped:
        del resources[logical]
    template["Outputs"] = {k: v for k, v in template["Outputs"].items() if not _logical_refs(v) & dropped}
    return template, dropped


@pytest.fixture(scope="module")
def moto_stack() -> Iterator[dict[str, Any]]:
    template, dropped = moto_template()
    assert dropped == {"CodeBuildProject", "BuildPipeline", "CodePipelineRole", "CodePipelineConnectionPolicy",
                       "CodePipelineCodeCommitPolicy", "CodeCommitPushRule", "CodeCommitPushRole"}
    with mock_aws(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto's "not supported" warnings for the types it only pretends to create
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        cloudformation.create_stack(StackName="continuum-acme-llm", TemplateBody=json.dumps(template),
                                    Capabilities=["CAPABILITY_IAM"],
                                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMETERS.items()])
        stack = cloudformation.describe_stacks(StackName="continuum-acme-llm")["Stacks"][0]
        resources = cloudformation.list_stack_resources(StackName="continuum-acme-llm")["StackResourceSummaries"]
        yield {"stack": stack, "resources": {r["LogicalResourceId"]: r for r in resources},
               "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}, "template": template}


def test_the_stack_deploys_into_moto(moto_stack: dict[str, Any]) -> None:
    assert moto_stack["stack"]["StackStatus"] == "CREATE_COMPLETE"
    created = {k for k, v in moto_stack["template"]["Resources"].items()
               if "Condition" not in v and v["Type"] not in MOTO_DOES_NOT_APPLY}
    assert set(moto_stack["resources"]) - {""} == created  # moto lists what it did not create without a logical id
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in moto_stack["resources"].values())
    outputs = moto_stack["outputs"]
    assert outputs["ArtifactsBucketName"] == "sagemaker-project-p-abc123def456-eu-west-1"
    assert outputs["ModelPackageGroupName"] == "acme-llm-p-abc123def456"


def test_moto_holds_the_bucket_in_the_region_encrypted_with_the_stack_key(moto_stack: dict[str, Any]) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    bucket = moto_stack["outputs"]["ArtifactsBucketName"]
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                         "KMSMasterKeyID": moto_stack["outputs"]["KmsKeyArn"]}
    key_id = moto_stack["outputs"]["KmsKeyArn"].rsplit("/", 1)[1]
    assert key_id in {k["KeyId"] for k in boto3.client("kms", region_name=REGION).list_keys()["Keys"]}
    topic = boto3.client("sns", region_name=REGION).get_topic_attributes(TopicArn=moto_stack["outputs"]["NotificationTopicArn"])
    assert topic["Attributes"]["KmsMasterKeyId"] == key_id


def test_moto_holds_the_roles_with_the_templates_policies(moto_stack: dict[str, Any]) -> None:
    iam = boto3.client("iam", region_name=REGION)
    role_name = moto_stack["outputs"]["SageMakerExecutionRoleArn"].rsplit("/", 1)[1]
    role = iam.get_role(RoleName=role_name)["Role"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    (attached,) = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    assert attached["PolicyArn"] == moto_stack["resources"]["SageMakerExecutionPolicy"]["PhysicalResourceId"]
    version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    sids = [s["Sid"] for s in document["Statement"]]
    expected = [s["Sid"] for s in RESOURCES["SageMakerExecutionPolicy"]["Properties"]["PolicyDocument"]["Statement"]]
    assert sids == expected
    pass_role = next(s for s in document["Statement"] if s["Sid"] == "PassThisRoleToSageMakerOnly")
    assert pass_role["Resource"] == role["Arn"]
    policies = {p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]}
    assert {moto_stack["outputs"][f"{p}PolicyArn"] for p in ("Viewer", "ModelEngineer", "DeploymentManager", "Admin")} <= policies


def test_moto_holds_the_event_rules_that_start_the_pipelines(moto_stack: dict[str, Any]) -> None:
    events = boto3.client("events", region_name=REGION)
    account = moto_stack["outputs"]["SageMakerExecutionRoleArn"].split(":")[4]
    pipeline = f"arn:aws:sagemaker:{REGION}:{account}:pipeline/acme-llm"
    schedule = events.describe_rule(Name="acme-llm-training-schedule")
    assert (schedule["ScheduleExpression"], schedule["State"]) == ("rate(7 days)", "ENABLED")
    (target,) = events.list_targets_by_rule(Rule="acme-llm-training-schedule")["Targets"]
    assert target["Arn"] == f"{pipeline}-training" and target["RoleArn"] == moto_stack["outputs"]["EventsRoleArn"]
    approval = events.describe_rule(Name="acme-llm-deploy-on-approval")
    assert json.loads(approval["EventPattern"]) == {
        "source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": ["acme-llm-p-abc123def456"], "ModelApprovalStatus": ["Approved"]}}
    (target,) = events.list_targets_by_rule(Rule="acme-llm-deploy-on-approval")["Targets"]
    assert target["Arn"] == f"{pipeline}-deploy"
    (target,) = events.list_targets_by_rule(Rule="acme-llm-pipeline-failed")["Targets"]
    assert target["Arn"] == moto_stack["outputs"]["NotificationTopicArn"]


def test_what_moto_only_pretends_to_create_is_checked_in_the_template(moto_stack: dict[str, Any]) -> None:
    pretended = {k for k, v in moto_stack["template"]["Resources"].items() if v["Type"] in MOTO_DOES_NOT_APPLY}
    assert pretended == {"ArtifactsBucketPolicy", "NotificationTopicPolicy", "ModelPackageGroup"}
    topic_policy = Stack(TEMPLATE, PARAMETERS).resolve(RESOURCES["NotificationTopicPolicy"]["Properties"])
    (statement,) = topic_policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": ["events.amazonaws.com", "cloudwatch.amazonaws.com"]}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
