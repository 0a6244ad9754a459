"""What every page and action of the dashboard shares: the config, the backend, who is at it, the running jobs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.backend import Backend
from pipelines.config import Config
from pipelines.ui.jobs import Jobs
from pipelines.ui.roles import Identity

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class UiState:
    config: Config
    backend: Backend
    identity: Identity
    home: Path  # the local home (the compare and model caches live there, with --aws too)
    token: str | None = None
    jobs: Jobs = field(default_factory=Jobs)
    extra: dict[str, Any] = field(default_factory=dict)
    described: dict[tuple[str, str], Any] = field(default_factory=dict)  # registry_ops.list_versions' cache

    def versions(self, status: str | None = None) -> list[Any]:
        """The group's versions, newest first; each described once per approval status."""
        from pipelines.registry_ops import list_versions

        return list_versions(self.sagemaker(), self.group, status, cache=self.described)

    def version(self, number: int) -> Any:
        found = next((v for v in self.versions() if v.version == number), None)
        if found is None:
            raise LookupError(f"model package group {self.group!r} has no version {number}")
        return found

    @property
    def group(self) -> str:
        return self.config.model.model_package_group

    def sagemaker(self) -> Any:
        return self.backend.client("sagemaker")

    def s3(self) -> Any:
        return self.backend.client("s3")


def check_binding(host: str, token: str | None) -> None:
    """Bind to this machine only, unless a token guards the dashboard."""
    if host not in LOCAL_HOSTS and not token:
        raise ValueError(f"binding the dashboard to {host} needs --token (or $CONTINUUM_UI_TOKEN): "
                         "anyone who reaches the port could otherwise approve and deploy")
    if token is not None and len(token) < 16:
        raise ValueError("the dashboard token must be at least 16 characters")
