"""Who may do what on the dashboard: the product's roles locally, what IAM allows the caller on AWS.

Each action of the dashboard is one of the CLI's commands (the feedback a person gives is data for the next
run, so it is `run`'s); the roles and the AWS actions of those commands are decided in pipelines/permissions.py
(PERSONA_COMMANDS, COMMAND_ACTIONS), which infra/ grants. So a Viewer sees everything and changes nothing; a
Model Engineer starts runs and gives feedback; a Deployment Manager approves, deploys and rolls back; an Admin
does everything. On AWS each action is checked with ``iam:SimulatePrincipalPolicy`` against its command's
actions; when the caller may not simulate, the page says so and AWS decides on each action.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.backend import Backend
from pipelines.config import UI_ROLES, Config
from pipelines.permissions import COMMAND_ACTIONS, PERSONA_COMMANDS

# dashboard action → the CLI commands it is (all of them must be the person's)
ACTION_COMMANDS: dict[str, tuple[str, ...]] = {
    "run": ("run",), "approve": ("models approve", "models reject"), "deploy": ("deploy",),
    "rollback": ("rollback",), "feedback": ("run",),
}
ACTIONS = tuple(ACTION_COMMANDS)
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    role: frozenset(action for action, commands in ACTION_COMMANDS.items()
                    if set(commands) <= set(PERSONA_COMMANDS[role])) for role in UI_ROLES}
ROLE_LABELS = {"viewer": "Viewer", "model_engineer": "Model Engineer", "deployment_manager": "Deployment Manager",
               "admin": "Admin"}
# The IAM actions of each dashboard action: its commands' (checked together: all must be allowed).
IAM_ACTIONS: dict[str, tuple[str, ...]] = {
    action: tuple(sorted(frozenset().union(*(COMMAND_ACTIONS[c] for c in commands))))
    for action, commands in ACTION_COMMANDS.items()}


class NotAllowed(PermissionError):
    """An action the person at the dashboard may not take; the message says who and why."""


@dataclass(frozen=True)
class Identity:
    name: str
    role: str  # a key of ROLE_LABELS, or "iam" on AWS
    allowed: frozenset[str]
    source: str  # how the role was decided, shown on every page

    def may(self, action: str) -> bool:
        return action in self.allowed

    def require(self, action: str) -> None:
        if action not in self.allowed:
            raise NotAllowed(f"{self.name} ({self.label}) may not {action}: {self.source}")

    @property
    def label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)


def local_identity(config: Config, user: str | None = None) -> Identity:
    """The role of the local user: ``ui.users[user]``, else ``ui.role``."""
    if user is not None:
        if user not in config.ui.users:
            raise ValueError(f"ui.users has no user {user!r} (has {sorted(config.ui.users) or 'none'})")
        role = config.ui.users[user]
        return Identity(user, role, ROLE_ACTIONS[role], f"role {ROLE_LABELS[role]} from ui.users.{user}")
    role = config.ui.role
    return Identity("local user", role, ROLE_ACTIONS[role], f"role {ROLE_LABELS[role]} from ui.role")


def _principal_arn(caller_arn: str) -> str:
    """An assumed-role session ARN as the role ARN IAM simulates (``arn:aws:sts::A:assumed-role/R/S`` →
    ``arn:aws:iam::A:role/R``); users and roles as they are."""
    if ":assumed-role/" in caller_arn:
        head, _, rest = caller_arn.partition(":assumed-role/")
        partition_account = head.replace(":sts:", ":iam:")
        return f"{partition_account}:role/{rest.split('/')[0]}"
    return caller_arn


def aws_identity(backend: Backend) -> Identity:
    """What IAM allows the caller, per action; when IAM cannot be asked, every action is offered and AWS decides."""
    caller = backend.client("sts").get_caller_identity()["Arn"]
    principal = _principal_arn(caller)
    iam: Any = backend.client("iam")
    allowed = set()
    try:
        for action, names in IAM_ACTIONS.items():
            results = iam.simulate_principal_policy(PolicySourceArn=principal, ActionNames=list(names))
            if all(item["EvalDecision"] == "allowed" for item in results["EvaluationResults"]):
                allowed.add(action)
    except Exception as exc:  # noqa: BLE001 - AccessDenied, or a partition without the API: degrade, say so
        return Identity(caller, "iam", frozenset(ACTIONS),
                        f"IAM could not be asked what {principal} may do ({exc}); actions are offered and AWS decides")
    return Identity(caller, "iam", frozenset(allowed), f"what IAM allows {principal} (iam:SimulatePrincipalPolicy)")
