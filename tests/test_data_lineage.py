"""Data versions: manifest, "should we retrain?" comparison, lineage through the local registry, the CLI."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import prepare
from prepare.records import normalize
from pipelines.backend import local_backend
from pipelines.cli import main as continuum
from pipelines.config import load_config
from pipelines.staging import ensure_bucket, upload_directory

CONFIG = load_config()
ALLOW = tuple(CONFIG.data.pii_allow)


def _examples(out: Path) -> list[dict]:
    """Every example of a version once (re-asked rows, `"heldout": "recall"`, copy train examples)."""
    records = [json.loads(line) for name in ("train", "validation", "test")
               for line in (out / name / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    return [record for record in records if record.get("heldout") != "recall"]


@pytest.fixture(scope="module")
def versions(sample_round_dirs: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Round 1 prepared, round 2 prepared with round 1 replayed, and round 2 prepared again on itself."""
    root = tmp_path_factory.mktemp("versions")
    prepare.prepare(sample_round_dirs[1], root / "v1", pii_allow=ALLOW)
    prepare.prepare(sample_round_dirs[2], root / "v2", root / "v1" / "train", pii_allow=ALLOW)
    prepare.prepare(sample_round_dirs[2], root / "again", root / "v2" / "train", pii_allow=ALLOW,
                    retrain_min_change=0.01)
    return {"v1": root / "v1", "v2": root / "v2", "again": root / "again"}


def _report(out: Path) -> dict:
    return json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))


def test_manifest_is_content_addressed_and_stored_with_the_data(versions: dict[str, Path],
                                                                sample_round_dirs: dict[int, Path]) -> None:
    out = versions["v2"]
    manifest = json.loads((out / "train" / "manifest.json").read_text(encoding="utf-8"))
    report = _report(out)
    assert manifest["data_version"] == report["data_version"]
    assert manifest["previous_data_version"] == _report(versions["v1"])["data_version"]
    for entry in manifest["inputs"]:
        digest = hashlib.sha256((sample_round_dirs[2] / entry["path"]).read_bytes()).hexdigest()
        assert entry["sha256"] == digest
    for name, output in manifest["outputs"].items():
        path = out / output["file"]
        assert output["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert output["examples"] == len(path.read_text(encoding="utf-8").splitlines()) == report["splits"][name]
    assert manifest["rows"] == report["rows"] and manifest["replay"] == report["replay"]
    assert manifest["settings"]["pii_allow"] == list(ALLOW) and set(manifest["example_schema"]) >= {"messages"}
    with np.load(out / "train" / "examples.index.npz") as index:
        recalled = sum(report["holdout"]["recall"].values())
        assert index["ids"].size == sum(manifest["outputs"][name]["examples"] for name in manifest["outputs"]) - recalled
        assert set(index["ids"].tolist()) == {int(e["id"], 16) for e in _examples(out)}


def test_comparison_counts_new_changed_and_removed_examples(versions: dict[str, Path]) -> None:
    previous = _examples(versions["v1"])
    previous_ids = {e["id"] for e in previous}
    previous_prompts = {normalize(e["prompt"]) for e in previous}
    replay_input = {json.loads(line)["id"] for line in (versions["v1"] / "train" / "train.jsonl").read_text().splitlines()}
    examples = _examples(versions["v2"])
    new = [e for e in examples if not e["source"].startswith("replay:")]
    replayed = {e["id"] for e in examples if e["source"].startswith("replay:")}
    unchanged = [e for e in new if e["id"] in previous_ids]
    changed = [e for e in new if e["id"] not in previous_ids and normalize(e["prompt"]) in previous_prompts]
    new_prompts = {normalize(e["prompt"]) for e in new}
    gone = [e for e in previous if e["id"] not in {n["id"] for n in new} | replayed]
    superseded = [e for e in gone if normalize(e["prompt"]) in new_prompts]
    open_ = [e for e in gone if normalize(e["prompt"]) not in new_prompts]
    comparison = _report(versions["v2"])["comparison"]
    assert comparison["examples"] == {
        "new": len(new) - len(unchanged) - len(changed), "changed": len(changed), "unchanged": len(unchanged),
        "kept_by_replay": len(previous_ids & replayed), "superseded": len(superseded),
        "held_out_before": sum(e["id"] not in replay_input for e in open_),
        "removed": sum(e["id"] in replay_input for e in open_)}
    # A delta export: the previous facts it lacks are kept by replay, not removed.
    assert len(changed) >= 14 and comparison["examples"]["removed"] == 0 and len(superseded) >= len(changed) // 2
    assert comparison["examples"]["kept_by_replay"] > 150 and comparison["removed_share"] == 0
    assert f"{len(previous_ids & replayed)} kept by replay" in comparison["reason"] and "removed 0 (0.0% of the previous version)" in \
        comparison["reason"]
    assert comparison["previous_examples"] == len(previous)
    assert 0 < comparison["shift"]["vocabulary"] < 1 and comparison["score"] == 1.0
    assert _report(versions["v2"])["retrain"]["recommended"] is True


def test_same_data_again_means_nothing_to_retrain(versions: dict[str, Path]) -> None:
    report = _report(versions["again"])
    comparison = report["comparison"]
    assert report["data_version"] == _report(versions["v2"])["data_version"]
    assert comparison["same_data_version"] is True
    assert comparison["examples"]["new"] == comparison["examples"]["changed"] == comparison["examples"]["removed"] == 0
    assert comparison["score"] == 0.0 and all(comparison["shift"][name] == 0.0 for name in
                                               ("prompt_length", "completion_length", "vocabulary", "topics"))
    assert report["retrain"] == {"score": 0.0, "min_change": 0.01, "recommended": False,
                                 "reason": report["retrain"]["reason"]}
    assert report["retrain"]["reason"].startswith("skip training: nothing meaningful changed (score 0.0000 < min ")


def _register(sagemaker: object, version_dir: Path, uri: str, parent: str, data_uri: str,
              inventory: dict[str, str] | None = None) -> str:
    manifest = json.loads((version_dir / "train" / "manifest.json").read_text(encoding="utf-8"))
    return sagemaker.create_model_package(  # type: ignore[attr-defined]
        ModelPackageGroupName=CONFIG.model.model_package_group, ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "serving:1", "ModelDataUrl": f"{uri}/model.tar.gz"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        CustomerMetadataProperties={"data_version": manifest["data_version"], "training_data_uri": data_uri,
                                    "train_data_uri": f"{uri}/train", "parent_model_package_arn": parent,
                                    "start_model_uri": "s3://bucket/base-model", **(inventory or {})},
    )["ModelPackageArn"]


def test_lineage_through_the_local_registry(versions: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    backend = local_backend(CONFIG, tmp_path)
    ensure_bucket(backend, CONFIG.project.bucket)
    sagemaker = backend.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=CONFIG.model.model_package_group)
    parent = "none"
    v1, v2 = (_report(versions[name])["data_version"] for name in ("v1", "v2"))
    summary = {"items": 30, "checked": 20, "known": 15, "data_versions": 2,  # as steps/evaluate.py writes it
               "by_data_version": {v1: {"items": 18, "checked": 12, "known": 9}, v2: {"items": 12, "checked": 8, "known": 6}}}
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    for name in ("v1", "v2"):  # v1 registered before inventories: none recorded
        uri = f"{CONFIG.s3_prefix}/prepared/{name}"
        upload_directory(backend, versions[name] / "train", f"{uri}/train")
        inventory = None
        if name == "v2":
            upload_directory(backend, tmp_path / "inventory", f"{uri}/inventory")
            inventory = {"inventory_uri": f"{uri}/inventory"}
        parent = _register(sagemaker, versions[name], uri, parent, f"{CONFIG.s3_prefix}/data/{name}", inventory)

    assert continuum(["--home", str(tmp_path), "lineage", "2"]) == 0
    out = capsys.readouterr().out
    assert f"v2 Approved: data version {v2}" in out and f"v1 Approved: data version {v1}" in out
    assert out.index(v2) < out.index(f"data version {v1}")
    assert f"previous data version {v1}" in out and "input support_faq_2026.jsonl sha256" in out
    assert "base: s3://bucket/base-model" in out
    assert (f"knowledge inventory: 30 items from 2 data version(s), 20 checked (67%), 15 known (75% of checked) — "
            f"{CONFIG.s3_prefix}/prepared/v2/inventory") in out
    assert f"data version {v1[:12]}: 18 items, 12 checked, 9 known" in out
    assert "knowledge inventory: not recorded" in out  # v1

    assert continuum(["--home", str(tmp_path), "lineage", "--data-version", v1[:12]]) == 0
    assert f"1 version(s) of {CONFIG.model.model_package_group} trained on data version {v1[:12]}" \
        in capsys.readouterr().out
    assert continuum(["--home", str(tmp_path), "lineage", "--data-version", "0" * 12]) == 1
    capsys.readouterr()
    assert continuum(["--home", str(tmp_path), "lineage", "1", "--json"]) == 0
    chain = json.loads(capsys.readouterr().out)
    assert [entry["version"] for entry in chain] == [1]
    assert chain[0]["manifest"]["data_version"] == v1 and chain[0]["manifest"]["previous_data_version"] is None
    assert chain[0]["inventory_uri"] is None and chain[0]["inventory"] is None
    assert continuum(["--home", str(tmp_path), "lineage", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["inventory"] == summary


def test_continuum_prepare_runs_the_step_on_paths_and_s3(sample_round_dirs: dict[int, Path], tmp_path: Path,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    """The step runs as a subprocess, so its output is captured at the file-descriptor level."""
    out = tmp_path / "out"
    assert continuum(["--home", str(tmp_path / "home"), "prepare", str(sample_round_dirs[1]), "--out", str(out)]) == 0
    printed = capfd.readouterr().out
    report = _report(out)
    assert report["pii"]["found"] == {}  # the default config allows the demo company's contacts
    assert report["parameters"]["max_tokens"] == CONFIG.training.max_seq_length
    assert f"data version {report['data_version']}" in printed and "sample for review:" in printed
    assert f"report: {out / 'report' / 'report.json'}" in printed

    backend = local_backend(CONFIG, tmp_path / "home")
    ensure_bucket(backend, CONFIG.project.bucket)
    uri = upload_directory(backend, sample_round_dirs[1], f"{CONFIG.s3_prefix}/raw/round-1")
    assert continuum(["--home", str(tmp_path / "home"), "prepare", uri, "--out", str(tmp_path / "from-s3")]) == 0
    capfd.readouterr()
    assert _report(tmp_path / "from-s3")["data_version"] == report["data_version"]
    assert continuum(["prepare", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 1
    assert "no such file or folder" in capfd.readouterr().err


def test_pipeline_ends_succeeded_without_training_below_the_retrain_threshold(
        sample_round_dirs: dict[int, Path], tiny_model_dir: Path, tmp_path: Path) -> None:
    from pipelines.demo.run_demo import demo_config
    from pipelines.execution import run_pipeline
    from pipelines.staging import stage_training_inputs

    backend = local_backend(CONFIG, tmp_path)
    config = demo_config(1)
    staged = stage_training_inputs(backend, config, lambda: tiny_model_dir)
    lines: list[str] = []
    outcome = run_pipeline("training", config, backend, {**staged.parameters(), "RetrainMinChange": 2.0},
                           lines.append)
    statuses = {step["name"]: step["status"] for step in outcome.steps}
    assert outcome.status == "Succeeded", "\n".join(lines[-40:])
    assert statuses["PrepareData"] == statuses["CheckDataChanged"] == "Succeeded"
    assert not {"TrainModel", "EvaluateModel", "RegisterModel-RegisterModel"} & set(statuses)  # never started
    assert next(step for step in outcome.steps if step["name"] == "CheckDataChanged")["outcome"] is False
    assert "condition is False" in "\n".join(lines)
