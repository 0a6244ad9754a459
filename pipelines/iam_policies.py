"""The project stack's IAM policies (`infra/template.yaml`) as data, and IAM's decision on them.

`load_template` reads the CloudFormation YAML (short-form tags such as `!Sub` included); `Stack` resolves it for
given parameter values (Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Join, conditions, AWS::NoValue) into each policy
resource's statements, with placeholder physical names for the stack's own resources; `decide` evaluates
statements as IAM evaluates one principal's identity policies: an explicit Deny wins over an Allow, otherwise
implicit deny. Action/NotAction and Resource/NotResource take IAM's `*` and `?` wildcards (actions
case-insensitively). Conditions are not evaluated: an Allow under a condition counts as allowing (the caller
meets it, e.g. iam:PassedToService), a Deny under a condition does not deny.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "infra" / "template.yaml"
ACCOUNT_ID = "123456789012"
_NO_VALUE = object()
_INTRINSICS = ("Ref", "Condition", "Fn::Sub", "Fn::GetAtt", "Fn::If", "Fn::Join", "Fn::Equals", "Fn::Not", "Fn::And",
               "Fn::Or", "Fn::Select", "Fn::Split", "Fn::Base64", "Fn::FindInMap", "Fn::ImportValue", "Fn::GetAZs")
Decision = Literal["Allow", "ExplicitDeny", "ImplicitDeny"]


class _CfnLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus CloudFormation's short-form tags (`!Sub x` → `{"Fn::Sub": x}`)."""


def _short_form(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _short_form)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data (intrinsic functions in their long form)."""
    with Path(path).open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


@dataclass(frozen=True)
class Statement:
    """One policy statement, resolved: lists of actions / resources (exactly one of each pair is set)."""

    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    conditional: bool = False
    sid: str = ""

    def matches_action(self, action: str) -> bool:
        if self.not_actions:
            return not any(_matches(p, action, fold=True) for p in self.not_actions)
        return any(_matches(p, action, fold=True) for p in self.actions)

    def matches_resource(self, resource: str | None) -> bool:
        """``resource`` None means "some resource": any Allow statement's resources can match."""
        if resource is None:
            return True
        if self.not_resources:
            return not any(_matches(p, resource) for p in self.not_resources)
        return any(_matches(p, resource) for p in self.resources)


def _matches(pattern: str, value: str, fold: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.IGNORECASE if fold else 0) is not None


def decide(statements: Iterable[Statement], action: str, resource: str | None = None) -> Decision:
    """IAM's answer for ``action`` (on ``resource``; None: on some resource) under these statements."""
    allowed = False
    for statement in statements:
        if not statement.matches_action(action):
            continue
        if statement.effect == "Deny":
            denies_all = resource is None and not statement.not_resources and "*" in statement.resources
            if not statement.conditional and (denies_all or (resource is not None and statement.matches_resource(resource))):
                return "ExplicitDeny"
        elif statement.matches_resource(resource):
            allowed = True
    return "Allow" if allowed else "ImplicitDeny"


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(str(v) for v in (value if isinstance(value, list) else [value]))


def _statements(document: dict[str, Any]) -> list[Statement]:
    raw = document.get("Statement", [])
    out = []
    for item in raw if isinstance(raw, list) else [raw]:
        out.append(Statement(effect=item["Effect"], actions=_as_tuple(item.get("Action")),
                             not_actions=_as_tuple(item.get("NotAction")), resources=_as_tuple(item.get("Resource")),
                             not_resources=_as_tuple(item.get("NotResource")),
                             conditional=bool(item.get("Condition")), sid=str(item.get("Sid", ""))))
    return out


@dataclass
class Stack:
    """The template resolved for ``parameters`` (others at their defaults) in ``region`` / ``account``."""

    template: dict[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)
    region: str = "us-east-1"
    account: str = ACCOUNT_ID

    def __post_init__(self) -> None:
        declared = self.template.get("Parameters", {})
        unknown = set(self.parameters) - set(declared)
        if unknown:
            raise KeyError(f"{sorted(unknown)} are not parameters of the template")
        self._values: dict[str, Any] = {}
        for name, spec in declared.items():
            value = self.parameters.get(name, spec.get("Default"))
            if value is None:
                raise KeyError(f"parameter {name} has no default: give it a value")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = [v for v in value.split(",")] if value else [""]
            self._values[name] = value
        self._conditions: dict[str, bool] = {}
        for name in self.template.get("Conditions", {}):
            self.condition(name)  # a condition may name another (Condition): resolved on demand

    # -- intrinsic functions --------------------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [item for item in (self.resolve(n) for n in node) if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key in _INTRINSICS:
                return self._intrinsic(key, arg)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not _NO_VALUE}

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self.ref(arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.attribute(logical, attribute)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return left == right
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Fn::Join":
            separator, items = arg
            return separator.join(str(i) for i in self.resolve(items))
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
            return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub_variable(m.group(1), variables), text)
        raise ValueError(f"{key} is not supported by this resolver (infra/template.yaml does not use it)")

    def _sub_variable(self, name: str, variables: dict[str, Any]) -> str:
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return str(variables[name])
        if "." in name:
            logical, attribute = name.split(".", 1)
            return str(self.attribute(logical, attribute))
        return str(self.ref(name))

    def ref(self, name: str) -> Any:
        pseudo = {"AWS::Partition": "aws", "AWS::Region": self.region, "AWS::AccountId": self.account,
                  "AWS::StackName": "continuum-project", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": _NO_VALUE}
        if name in pseudo:
            return pseudo[name]
        if name in self._values:
            return self._values[name]
        resource = self.template["Resources"][name]
        kind, props = resource["Type"], resource.get("Properties", {})
        named = {"AWS::S3::Bucket": "BucketName", "AWS::CodeBuild::Project": "Name", "AWS::CodePipeline::Pipeline": "Name",
                 "AWS::Logs::LogGroup": "LogGroupName", "AWS::Events::Rule": "Name"}
        if kind in named and named[kind] in props:
            return self.resolve(props[named[kind]])
        if kind in ("AWS::SNS::Topic",):
            return f"arn:aws:sns:{self.region}:{self.account}:{name}"
        if kind in ("AWS::IAM::ManagedPolicy",):
            return f"arn:aws:iam::{self.account}:policy/{name}"
        if kind == "AWS::SageMaker::ModelPackageGroup":
            return self.attribute(name, "ModelPackageGroupArn")
        return name

    def attribute(self, logical: str, attribute: str) -> str:
        kind = self.template["Resources"][logical]["Type"]
        physical = self.ref(logical) if kind != "AWS::SageMaker::ModelPackageGroup" else logical
        arns = {
            "AWS::IAM::Role": f"arn:aws:iam::{self.account}:role/{physical}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{physical}",
            "AWS::KMS::Key": f"arn:aws:kms:{self.region}:{self.account}:key/{physical}",
            "AWS::CodeBuild::Project": f"arn:aws:codebuild:{self.region}:{self.account}:project/{physical}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{self.region}:{self.account}:log-group:{physical}:*",
            "AWS::Events::Rule": f"arn:aws:events:{self.region}:{self.account}:rule/{physical}",
        }
        if kind == "AWS::SageMaker::ModelPackageGroup" and attribute == "ModelPackageGroupArn":
            name = self.resolve(self.template["Resources"][logical]["Properties"]["ModelPackageGroupName"])
            return f"arn:aws:sagemaker:{self.region}:{self.account}:model-package-group/{name}"
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        raise ValueError(f"GetAtt {logical}.{attribute} ({kind}) is not supported by this resolver")

    # -- policies -------------------------------------------------------------------------------------------------
    def exists(self, logical: str) -> bool:
        condition = self.template["Resources"][logical].get("Condition")
        return condition is None or self.condition(condition)

    def policy_statements(self, logical: str) -> list[Statement]:
        """The statements of one AWS::IAM::ManagedPolicy (none when its condition is false)."""
        resource = self.template["Resources"][logical]
        if resource["Type"] != "AWS::IAM::ManagedPolicy":
            raise ValueError(f"{logical} is a {resource['Type']}, not an AWS::IAM::ManagedPolicy")
        return _statements(self.resolve(resource["Properties"]["PolicyDocument"])) if self.exists(logical) else []

    def role_statements(self, role: str) -> list[Statement]:
        """Everything attached to a role: its inline policies and the template's managed policies naming it."""
        props = self.template["Resources"][role].get("Properties", {})
        out = [s for policy in self.resolve(props.get("Policies", [])) for s in _statements(policy["PolicyDocument"])]
        for logical, resource in self.template["Resources"].items():
            if resource["Type"] == "AWS::IAM::ManagedPolicy" and self.exists(logical):
                roles = resource.get("Properties", {}).get("Roles", [])
                if {"Ref": role} in roles:
                    out.extend(self.policy_statements(logical))
        return out

    def policy_resources(self) -> list[str]:
        """Logical ids of every resource that carries IAM statements (roles and managed policies)."""
        return [k for k, v in self.template["Resources"].items() if v["Type"] in ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy")]

    def grants(self, logical: str) -> dict[str, list[str]]:
        """What a role or managed policy grants, for review: ``"Allow action" | "Deny action"`` → sorted resources
        (``NOT `` before a NotResource, ``(conditional)`` after a statement with a condition)."""
        kind = self.template["Resources"][logical]["Type"]
        statements = self.policy_statements(logical) if kind == "AWS::IAM::ManagedPolicy" else _statements_inline(self, logical)
        out: dict[str, set[str]] = {}
        for statement in statements:
            suffix = " (conditional)" if statement.conditional else ""
            targets = [f"NOT {r}" for r in statement.not_resources] or list(statement.resources)
            for action in statement.actions or tuple(f"NOT {a}" for a in statement.not_actions):
                out.setdefault(f"{statement.effect} {action}", set()).update(t + suffix for t in targets)
        return {key: sorted(values) for key, values in sorted(out.items())}


def _statements_inline(stack: Stack, role: str) -> list[Statement]:
    props = stack.template["Resources"][role].get("Properties", {})
    return [s for policy in stack.resolve(props.get("Policies", [])) for s in _statements(policy["PolicyDocument"])]


# The parameters the reviewed list (infra/reviewed_permissions.yaml) is made with: every optional part on.
REVIEW_PARAMETERS: dict[str, dict[str, Any]] = {
    "connection": {"SageMakerProjectName": "PROJECT", "SageMakerProjectId": "p-projectid",
                   "CodeStarConnectionArn": "arn:aws:codestar-connections:us-east-1:123456789012:connection/CONNECTION",
                   "RepositoryFullName": "owner/repository", "SubnetIds": "subnet-1", "SecurityGroupIds": "sg-1",
                   "EnableNetworkIsolation": "true"},
    "codecommit": {"SageMakerProjectName": "PROJECT", "SageMakerProjectId": "p-projectid",
                   "RepositoryType": "CodeCommit", "CodeCommitRepositoryName": "REPOSITORY"},
}


def reviewed_grants(template: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """Every role's and managed policy's grants (`Stack.grants`) under REVIEW_PARAMETERS: what
    infra/reviewed_permissions.yaml must hold (`python -m pipelines.iam_policies` prints it)."""
    stacks = [Stack(template, parameters) for parameters in REVIEW_PARAMETERS.values()]
    out: dict[str, dict[str, list[str]]] = {}
    for logical in stacks[0].policy_resources():
        stack = next((s for s in stacks if s.exists(logical)), stacks[0])
        out[logical] = stack.grants(logical)
    return out


if __name__ == "__main__":
    print("# Every grant of infra/template.yaml's roles and managed policies, for review (resolved with"
          " pipelines/iam_policies.py REVIEW_PARAMETERS).\n# Regenerate: python -m pipelines.iam_policies >"
          " infra/reviewed_permissions.yaml; tests/test_least_privilege.py fails until it matches the template.")
    print(yaml.safe_dump(reviewed_grants(load_template()), sort_keys=False, width=200), end="")
