"""The project stack's IAM policies grant exactly what continuum does (pipelines/permissions.py), nothing beyond
the reviewed list (infra/reviewed_permissions.yaml), and keep the personas apart. The calls a real local run
makes are checked against the same policies in test_permissions_observed.py."""
from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest
import yaml

from pipelines import permissions
from pipelines.iam_policies import Stack, Statement, decide, load_template, reviewed_grants

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = load_template()
ARN = "arn:aws:sagemaker:us-east-1:123456789012"
PLAIN = {"SageMakerProjectName": "acme", "SageMakerProjectId": "p-acme1"}
EVERY_OPTION = {**PLAIN, "SubnetIds": "subnet-1,subnet-2", "SecurityGroupIds": "sg-1", "EnableNetworkIsolation": "true"}


def _allowed_actions(statements: list[Statement]) -> set[str]:
    return {action for s in statements if s.effect == "Allow" for action in s.actions}


@pytest.mark.parametrize("parameters", [PLAIN, EVERY_OPTION], ids=["plain", "vpc-isolated"])
@pytest.mark.parametrize("persona", sorted(permissions.PERSONA_POLICIES))
def test_each_persona_policy_allows_exactly_its_commands_actions(persona: str, parameters: dict) -> None:
    statements = Stack(TEMPLATE, parameters).policy_statements(permissions.PERSONA_POLICIES[persona])
    granted, needed = _allowed_actions(statements), permissions.persona_actions(persona)
    assert granted == needed, f"{persona}: granted but no command calls {sorted(granted - needed)}; " \
                              f"called but not granted {sorted(needed - granted)}"
    assert all(not any(c in a for c in "*?") for a in granted), "persona policies name every action"


@pytest.mark.parametrize("parameters, network", [(PLAIN, set()), (EVERY_OPTION, permissions.VPC_ACTIONS)],
                         ids=["plain", "vpc-isolated"])
def test_the_execution_role_grants_exactly_what_steps_jobs_and_pipelines_need(parameters: dict, network: set) -> None:
    statements = Stack(TEMPLATE, parameters).role_statements("SageMakerExecutionRole")
    assert _allowed_actions(statements) == set(permissions.EXECUTION_ROLE_ACTIONS) | set(network)


def test_codebuild_may_do_what_buildspec_runs() -> None:
    statements = Stack(TEMPLATE, PLAIN).role_statements("CodeBuildRole")
    assert _allowed_actions(statements) == set(permissions.BUILD_ACTIONS)


def test_policies_grant_nothing_beyond_the_reviewed_list() -> None:
    reviewed = yaml.safe_load((REPO / "infra" / "reviewed_permissions.yaml").read_text(encoding="utf-8"))
    current = reviewed_grants(TEMPLATE)
    for logical in sorted(set(reviewed) | set(current)):
        assert current.get(logical) == reviewed.get(logical), (
            f"{logical}: the template's grants differ from infra/reviewed_permissions.yaml; review the change and "
            "regenerate it with `python -m pipelines.iam_policies > infra/reviewed_permissions.yaml`")


def test_model_engineers_change_no_endpoint_and_deployment_managers_train_nothing() -> None:
    stack = Stack(TEMPLATE, PLAIN)
    engineer = stack.policy_statements("ModelEngineerPolicy")
    for action in ("sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint",
                   "sagemaker:CreateEndpointConfig", "sagemaker:UpdateModelPackage", "application-autoscaling:PutScalingPolicy"):
        assert decide(engineer, action) == "ImplicitDeny", action
    assert decide(engineer, "sagemaker:StartPipelineExecution", f"{ARN}:pipeline/acme-training") == "Allow"
    assert decide(engineer, "sagemaker:StartPipelineExecution", f"{ARN}:pipeline/acme-deploy") == "ImplicitDeny"

    manager = stack.policy_statements("DeploymentManagerPolicy")
    assert decide(manager, "sagemaker:StartPipelineExecution", f"{ARN}:pipeline/acme-training") == "ExplicitDeny"
    assert decide(manager, "sagemaker:CreateTrainingJob", f"{ARN}:training-job/x") == "ExplicitDeny"
    assert decide(manager, "sagemaker:StartPipelineExecution", f"{ARN}:pipeline/acme-deploy") == "Allow"
    assert decide(manager, "sagemaker:UpdateEndpoint", f"{ARN}:endpoint/acme-production") == "Allow"
    assert decide(manager, "sagemaker:UpdateEndpoint", f"{ARN}:endpoint/another-team") == "ImplicitDeny"

    viewer = _allowed_actions(stack.policy_statements("ViewerPolicy"))
    writes = {a for a in viewer if not a.split(":")[1].startswith(("Describe", "List", "Get"))}
    assert writes == {"kms:Decrypt"}, "the viewer reads (decrypting what it reads) and writes nothing"


def test_pass_role_is_scoped_to_the_role_and_to_sagemaker() -> None:
    stack = Stack(TEMPLATE, PLAIN)
    role_arn = stack.attribute("SageMakerExecutionRole", "Arn")
    for logical in ("SageMakerExecutionPolicy", "ModelEngineerPolicy", "DeploymentManagerPolicy", "AdminPolicy",
                    "CodeBuildPolicy"):
        document = stack.resolve(TEMPLATE["Resources"][logical]["Properties"]["PolicyDocument"])
        passes = [s for s in document["Statement"] if "iam:PassRole" in str(s["Action"])]
        assert passes, logical
        for statement in passes:
            assert statement["Resource"] in (role_arn, stack.attribute("EventsRole", "Arn")), logical
            service = statement["Condition"]["StringEquals"]["iam:PassedToService"]
            assert service == ("sagemaker.amazonaws.com" if statement["Resource"] == role_arn else "events.amazonaws.com")


def test_the_evaluator_follows_iam() -> None:
    statements = [Statement("Allow", actions=("s3:Get*",), resources=("arn:aws:s3:::b/*",)),
                  Statement("Allow", not_actions=("iam:*", "s3:*"), resources=("*",)),
                  Statement("Deny", actions=("sagemaker:Delete*",), resources=(f"{ARN}:endpoint/prod",)),
                  Statement("Deny", actions=("ec2:*",), resources=("*",), conditional=True)]
    assert decide(statements, "s3:GetObject", "arn:aws:s3:::b/key") == "Allow"
    assert decide(statements, "S3:getobject", "arn:aws:s3:::other/key") == "ImplicitDeny"
    assert decide(statements, "s3:PutObject") == "ImplicitDeny"
    assert decide(statements, "iam:PassRole") == "ImplicitDeny"          # NotAction excludes it
    assert decide(statements, "sagemaker:DeleteEndpoint", f"{ARN}:endpoint/prod") == "ExplicitDeny"
    assert decide(statements, "sagemaker:DeleteEndpoint", f"{ARN}:endpoint/dev") == "Allow"
    assert decide(statements, "ec2:CreateVpc") == "Allow"                # a conditional Deny does not deny


def test_command_and_step_actions_name_real_sagemaker_operations() -> None:
    operations = set(botocore.session.get_session().get_service_model("sagemaker").operation_names)
    operations |= {"InvokeEndpoint"}  # sagemaker-runtime's, authorized as sagemaker:InvokeEndpoint
    named = set(permissions.EXECUTION_ROLE_ACTIONS).union(*permissions.COMMAND_ACTIONS.values())
    unknown = {a for a in named if a.startswith("sagemaker:") and a.split(":", 1)[1] not in operations}
    assert not unknown


def test_api_calls_map_to_their_iam_actions() -> None:
    assert permissions.iam_action("sagemaker-runtime", "InvokeEndpoint") == "sagemaker:InvokeEndpoint"
    assert permissions.iam_action("s3", "ListObjectsV2") == "s3:ListBucket"
    assert permissions.iam_action("s3", "HeadObject") == "s3:GetObject"
    assert permissions.iam_action("s3", "ListBuckets") == "s3:ListAllMyBuckets"
    assert permissions.iam_action("application-auto-scaling", "PutScalingPolicy") == \
        "application-autoscaling:PutScalingPolicy"
    assert permissions.iam_action("sts", "GetCallerIdentity") is None
    with pytest.raises(KeyError, match="no IAM prefix"):
        permissions.iam_action("dynamodb", "GetItem")


@pytest.mark.parametrize("parameters, denies", [
    (PLAIN, []),
    ({**PLAIN, "EnableNetworkIsolation": "true"}, [{"Bool": {"sagemaker:NetworkIsolation": "false"}}]),
    (EVERY_OPTION, [{"Bool": {"sagemaker:NetworkIsolation": "false"}}, {"Null": {"sagemaker:VpcSubnets": "true"}}]),
], ids=["open", "isolated", "isolated-in-vpc"])
def test_network_isolation_denies_jobs_and_models_without_it(parameters: dict, denies: list) -> None:
    stack = Stack(TEMPLATE, parameters)
    found = []
    for logical in ("SageMakerNetworkIsolationPolicy", "SageMakerVpcOnlyPolicy"):
        if stack.exists(logical):
            document = stack.resolve(TEMPLATE["Resources"][logical]["Properties"]["PolicyDocument"])
            for statement in document["Statement"]:
                assert statement["Effect"] == "Deny" and statement["Action"] == [
                    "sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob", "sagemaker:CreateModel"]
                found.append(statement["Condition"])
    assert found == denies
