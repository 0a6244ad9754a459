"""Config validation errors name the field; the CLI's light commands work on an empty local home."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.config import ConfigError, DEMO_CONFIG_PATH, load_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_default_is_valid() -> None:
    config = load_config()
    assert config.model.base_model is None
    assert config.evaluation.gate.metric == "company_facts_token_f1"
    assert config.training_pipeline_name == "continuum-demo-training"


def test_errors_name_the_file_and_field(tmp_path: Path) -> None:
    text = DEMO_CONFIG_PATH.read_text().replace("threshold: 0.2", "threshold: high").replace("r: 32", "r: 0")
    with pytest.raises(ConfigError) as excinfo:
        load_config(_write(tmp_path, text))
    message = str(excinfo.value)
    assert str(tmp_path / "config.yaml") in message
    assert "evaluation.gate.threshold" in message
    assert "training.lora.r" in message


def test_unknown_keys_and_bad_yaml_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="training.epoch_count: Extra inputs are not permitted"):
        load_config(_write(tmp_path, DEMO_CONFIG_PATH.read_text().replace("epochs: 20", "epoch_count: 20")))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "project: [unclosed"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_use_dotted_keys() -> None:
    config = load_config(overrides={"project.bucket": "other-bucket", "training.lora.r": 4})
    assert config.project.bucket == "other-bucket" and config.training.lora.r == 4


def test_cli_reports_config_errors_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, "project: {name: x}\n")
    assert main(["models", "list", "--config", str(bad)]) == 2
    assert "project.bucket" in capsys.readouterr().err


def test_cli_definition_and_models_on_an_empty_home(continuum_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["definition", "deploy"]) == 0
    definition = json.loads(capsys.readouterr().out)
    names = [step["Name"] for step in definition["Steps"]]
    assert names[:4] == ["ResolveApprovedModel", "CheckSmokeSuites", "DeployEndpoint", "SmokeTest"]
    assert definition["Parameters"] and all(step["Type"] in ("Processing", "Condition", "Fail") for step in definition["Steps"])
    assert main(["models", "list"]) == 0
    assert "no model versions in continuum-demo-models" in capsys.readouterr().out
    assert main(["models", "approve", "3"]) == 1
    assert "has no versions yet" in capsys.readouterr().err
    assert main(["rollback"]) == 1
    assert "nothing to roll back" in capsys.readouterr().out
