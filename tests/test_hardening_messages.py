"""Issue 14, items 2 and 7: config and suite files are bounded and checked before parsing, and every error
names its place (the file, the archive, the parameter) and what to do."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from common.benchmarks import BenchmarkError, load_suite
from common.jsonl import JsonlError, iter_jsonl_lines
from common.model_io import materialize_model_dir
from pipelines import cli
from pipelines.commands import run as run_command
from pipelines.config import MAX_CONFIG_BYTES, ConfigError, load_config
from pipelines.local.endpoints import safe_extract


def test_a_binary_config_names_the_file(tmp_path: Path, continuum_home: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "continuum.yaml"
    config.write_bytes(b"ab\xa5\xff\x00\x01binary")
    assert cli.main(["status", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"config error: {config}: not UTF-8 text (byte 0xa5 at offset 2): a config is a YAML text file; "
                   "is it the right file?")
    config.write_bytes(b"project:\x00 x\n")
    with pytest.raises(ConfigError, match="holds NUL bytes"):
        load_config(config)


def test_config_size_is_bounded_before_reading(tmp_path: Path) -> None:
    config = tmp_path / "big.yaml"
    with config.open("w") as handle:
        handle.truncate(MAX_CONFIG_BYTES + 1)  # sparse: nothing of it is read
    with pytest.raises(ConfigError, match=r"big.yaml: 1,048,577 bytes, over the 1,048,576-byte limit"):
        load_config(config)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="fifo.yaml: not a regular file"):
        load_config(fifo)  # would block forever if it were opened
    nested = tmp_path / "nested.yaml"
    nested.write_text("a: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="nested.yaml: "):
        load_config(nested)


def _truncated_archive(folder: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = os.urandom(200_000)
        info = tarfile.TarInfo("config.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive = folder / "model.tar.gz"
    archive.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return archive


def test_a_damaged_model_archive_names_its_path(tmp_path: Path) -> None:
    archive = _truncated_archive(tmp_path)
    with pytest.raises(ValueError, match=rf"{archive}: cannot extract model archive \(Compressed file ended"):
        materialize_model_dir(tmp_path)
    with pytest.raises(ValueError, match=rf"{archive}: not a readable model archive .* upload the model again"):
        safe_extract(archive, tmp_path / "out")


def test_run_checks_parameters_before_staging(continuum_home: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    staged: list[object] = []
    monkeypatch.setattr("pipelines.execution.run_staged", lambda *args, **kwargs: staged.append(args))
    assert cli.main(["run", "--param", "Bogus=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --param Bogus=1: the training pipeline has no parameter 'Bogus'; its parameters: ")
    assert "Epochs" in err
    assert cli.main(["run", "--param", "epochs=3"]) == 1
    assert "did you mean Epochs?" in capsys.readouterr().err
    assert cli.main(["run", "--param", "Epochs=three"]) == 1
    assert "Epochs is a Float parameter" in capsys.readouterr().err
    assert cli.main(["run", "--pipeline", "deploy", "--param", "TrafficRouting=SOMETIMES"]) == 1
    assert "TrafficRouting must be one of ALL_AT_ONCE, CANARY, LINEAR" in capsys.readouterr().err
    assert staged == []  # nothing was staged for any of them


def test_parameter_names_are_the_built_pipelines(continuum_home: Path) -> None:
    from pipelines.backend import local_backend
    from pipelines.cli_support import pipeline_parameters
    from pipelines.config import DEMO_CONFIG_PATH
    from pipelines.definitions import build_pipeline

    config = load_config(DEMO_CONFIG_PATH)
    backend = local_backend(config, continuum_home)
    for kind in ("training", "deploy", "monitor"):
        built = {parameter.name for parameter in build_pipeline(kind, config, backend).parameters}
        assert {parameter.name for parameter in pipeline_parameters(kind, config)} == built, kind
    assert run_command.check_parameters is not None


def test_suite_files_are_bounded(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "suite.yaml").write_bytes(b"name: x\n" + b"#" * (1024 * 1024))
    with pytest.raises(BenchmarkError, match=r"suite.yaml: 1,048,584 bytes, over the 1,048,576-byte limit"):
        load_suite(suite)
    (suite / "suite.yaml").write_bytes(b"name: \xff\xfe")
    with pytest.raises(BenchmarkError, match="suite.yaml: not UTF-8 text"):
        load_suite(suite)


def test_a_jsonl_line_over_the_limit_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text('{"id": "1"}\n' + '{"id": "' + "x" * 5000 + '"}\n')
    with pytest.raises(JsonlError, match=r"cases.jsonl:2: line longer than 1,000 bytes"):
        list(iter_jsonl_lines(path, max_line_bytes=1000))
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(JsonlError, match=r"cases.jsonl:1: JSON nested too deeply"):
        list(iter_jsonl_lines(path))
