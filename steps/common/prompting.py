"""The prompt template shared by training, evaluation and (through continuum.json) serving."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROMPT_PLACEHOLDER = "{prompt}"
DEFAULT_PROMPT_TEMPLATE = "### Question:\n{prompt}\n### Answer:\n"


def validate_template(template: str) -> str:
    """Return `template` if it holds exactly one `{prompt}` placeholder, else raise ValueError."""
    if not isinstance(template, str) or template.count(PROMPT_PLACEHOLDER) != 1:
        raise ValueError(f"prompt template must contain '{PROMPT_PLACEHOLDER}' exactly once, got {template!r}")
    return template


def format_prompt(template: str, prompt: str) -> str:
    """Put `prompt` into `template`; other braces in either string are left alone (no str.format)."""
    return validate_template(template).replace(PROMPT_PLACEHOLDER, prompt)


def template_from_metadata(metadata: Mapping[str, Any]) -> str:
    """The model's prompt template from its continuum.json contents, else the default."""
    template = metadata.get("prompt_template")
    if template is None:
        return DEFAULT_PROMPT_TEMPLATE
    return validate_template(template)
