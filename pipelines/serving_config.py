"""`deploy.serving`: the endpoint's request limits in the project config, passed to the serving container as
its environment (the model package's `Environment`, which the local endpoints and the image's serve.py read).

The names, defaults and environment variables are containers/serving/limits.py's (loaded by path: the
serving code imports nothing from the repository, and this module nothing from the container's packages).
"""
from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel, ConfigDict, Field

LIMITS_PATH = Path(__file__).resolve().parents[1] / "containers" / "serving" / "limits.py"


@functools.lru_cache(maxsize=1)
def serving_limits() -> ModuleType:
    """containers/serving/limits.py, loaded once by path."""
    from pipelines.local.step_code import module_at

    return module_at(LIMITS_PATH, "continuum_serving_limits")


def _default(name: str) -> object:
    return getattr(serving_limits().ServingLimits(), name)


class ServingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_request_bytes: int = Field(default=_default("max_request_bytes"), ge=1,
                                   description="request body bytes (413 over it)")
    max_input_tokens: int = Field(default=_default("max_input_tokens"), ge=0,
                                  description="prompt tokens per input (400 over it); 0: the model's max length minus "
                                              "the request's max_new_tokens")
    max_json_depth: int = Field(default=_default("max_json_depth"), ge=1, description="nesting of the request JSON")
    max_queue: int = Field(default=_default("max_queue"), ge=1, description="requests waiting for the model (503 beyond)")
    request_timeout_seconds: float = Field(default=_default("request_timeout_seconds"), gt=0,
                                           description="how long a request may wait and run (503/504 beyond)")
    max_batch_inputs: int = Field(default=_default("max_batch_inputs"), ge=1,
                                  description="inputs of concurrent requests generated in one call")

    def environment(self) -> dict[str, str]:
        """The container environment that sets these limits (the variables limits.py reads)."""
        names = serving_limits().ENVIRONMENT
        return {names[field]: str(getattr(self, field)) for field in type(self).model_fields}
