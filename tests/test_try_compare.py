"""`continuum try` and `continuum compare` on registered versions of every approval status (local runtime).

The registry holds the tiny base model (v1, Approved), the session's trained round-1 model twice (v2
Rejected, v3 PendingManualApproval, under different URIs) and a version whose artifact is gone (v4).
"""
from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.examples import read_examples
from pipelines import s3_layout
from pipelines.backend import Backend, local_backend
from pipelines.cli import main
from pipelines.config import load_config
from pipelines.model_artifacts import cache_root, parse_version
from pipelines.paths import BENCHMARKS_DIR
from pipelines.staging import ensure_bucket, upload_directory

CONFIG = load_config()
GROUP = CONFIG.model.model_package_group
SUITES = ("company_facts", "support_routing")
TABLE_ROW = re.compile(r"^(?P<suite>\S*)\s+(?P<metric>\S+)\s+(?P<a>-?\d+\.\d{4})\s+(?P<b>-?\d+\.\d{4})\s+"
                       r"(?P<delta>[+-]\d+\.\d{4})(?:\s+(?P<verdict>better|worse|same))?$")


@dataclass(frozen=True)
class Registry:
    home: Path
    backend: Backend
    uris: dict[int, str]
    trained_archive: Path


def _tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


@pytest.fixture(scope="module")
def registry(tiny_model_dir: Path, trained_round1: dict, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    assert trained_round1["code"] == 0, trained_round1["log"][-2000:]
    home = tmp_path_factory.mktemp("try-compare-home")
    work = tmp_path_factory.mktemp("try-compare-archives")
    backend = local_backend(CONFIG, home)
    ensure_bucket(backend, CONFIG.project.bucket)
    s3, sagemaker = backend.client("s3"), backend.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    base = _tar(tiny_model_dir, work / "base.tar.gz")
    trained = _tar(trained_round1["dir"], work / "trained.tar.gz")
    plan = [(base, "Approved"), (trained, "Rejected"), (trained, "PendingManualApproval"), (None, "PendingManualApproval")]
    uris: dict[int, str] = {}
    for number, (archive, status) in enumerate(plan, start=1):
        key = f"{CONFIG.project.name}/models/v{number}/model.tar.gz"
        if archive is not None:
            s3.upload_file(str(archive), CONFIG.project.bucket, key)
        uris[number] = f"s3://{CONFIG.project.bucket}/{key}"
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP, ModelApprovalStatus=status,
            InferenceSpecification={"Containers": [{"Image": "serving:1", "ModelDataUrl": uris[number]}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]},
            CustomerMetadataProperties={"data_version": f"data-{number}"})
    for suite in SUITES:
        upload_directory(backend, BENCHMARKS_DIR / suite, f"{s3_layout.benchmarks_uri(CONFIG)}/{suite}")
    return Registry(home, backend, uris, trained)


@pytest.fixture(scope="module")
def questions(prepared_rounds: dict[int, Path]) -> list[dict]:
    """Round-1 training questions about products (the trained model answers ≥ 80% of them exactly)."""
    records = [r for r in read_examples(prepared_rounds[1] / "train") if r["source"].startswith("product_catalog")]
    return records[:6]


def _run(home: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`continuum --home HOME ARGV...` in process: (exit code, stdout, stderr)."""
    code = main(["--home", str(home), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _cli(registry: Registry, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return _run(registry.home, capsys, *argv)


def test_version_names() -> None:
    assert parse_version("3") == parse_version("v3") == 3 and parse_version("latest") is None
    with pytest.raises(ValueError, match="expected a version number"):
        parse_version("three")


def test_try_a_rejected_version_answers_its_training_questions(registry: Registry, questions: list[dict],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(registry, capsys, "try", "2", *(q["prompt"] for q in questions), "--max-new-tokens", "16")
    assert code == 0, err
    answers = re.findall(r"^> .*\n(.*)$", out, flags=re.MULTILINE)
    assert len(answers) == len(questions)
    right = sum(answer == q["completion"] for answer, q in zip(answers, questions))
    assert right >= len(questions) - 1, list(zip(answers, (q["completion"] for q in questions)))
    assert "version 2 (Rejected, data data-2; not deployed)" in err
    assert "(cached)" not in err and len(list(cache_root(registry.home).iterdir())) == 1


def test_try_a_pending_version_uses_the_cache_on_the_second_call(registry: Registry, questions: list[dict],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    question = questions[0]
    first = _cli(registry, capsys, "try", "v3", question["prompt"], "--max-new-tokens", "16")
    again = _cli(registry, capsys, "try", "3", question["prompt"], "--max-new-tokens", "16")
    assert first[0] == again[0] == 0, first[2] + again[2]
    assert first[1] == again[1] == question["completion"] + "\n"  # one prompt: the answer alone
    assert "version 3 (PendingManualApproval" in first[2] and "(cached)" not in first[2]
    assert "(cached)" in again[2]
    unpacked = cache_root(registry.home) / next(p.name for p in cache_root(registry.home).iterdir()
                                                 if json.loads((p / ".source.json").read_text())["uri"] == registry.uris[3])
    assert (unpacked / "config.json").is_file() and (unpacked / "code" / "inference.py").is_file()


def test_try_the_base_version_gives_a_different_answer(registry: Registry, questions: list[dict],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    question = questions[0]
    code, out, err = _cli(registry, capsys, "try", "1", question["prompt"], "--max-new-tokens", "16")
    assert code == 0, err
    assert "version 1 (Approved" in err
    assert out.strip() != question["completion"]


@pytest.mark.parametrize(("version", "message"), [
    ("9", f"try: model package group {GROUP!r} has no version 9 (has [4, 3, 2, 1])"),
    ("4", "try: the artifact s3://"),
    ("nine", "try: expected a version number (3, v3) or 'latest', got 'nine'"),
])
def test_try_errors_are_one_line(registry: Registry, version: str, message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(registry, capsys, "try", version, "hello")
    assert code == 1 and out == ""
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    if version == "4":
        local_file = registry.home / "s3" / CONFIG.project.bucket / CONFIG.project.name / "models" / "v4" / "model.tar.gz"
        assert err.rstrip().endswith(f"{registry.uris[4]} is missing from the local S3 ({local_file})")


def test_compare_prints_both_versions_per_suite_metric(registry: Registry, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "compare"
    code, out, err = _cli(registry, capsys, "compare", "2", "1", "--output-dir", str(output))
    assert code == 0, err
    evaluation = json.loads((output / "evaluation.json").read_text())
    assert sorted(evaluation["suites"]) == sorted(SUITES)
    lines = out.splitlines()
    assert lines[0].split() == ["suite", "metric", "v2", "(Rejected)", "v1", "(Approved)", "delta"]
    rows: dict[tuple[str, str], dict[str, str]] = {}
    suite = ""
    for line in lines[1:]:
        match = TABLE_ROW.match(line)
        if match:
            suite = match["suite"] or suite  # a suite's later rows leave the suite column blank
            rows[(suite, match["metric"])] = match.groupdict()
    for name, entry in evaluation["metrics"].items():
        row = rows[(entry["suite"], entry["metric"])]
        assert (row["a"], row["b"], row["delta"]) == (
            f"{entry['value']:.4f}", f"{entry['baseline']:.4f}", f"{entry['delta']:+.4f}"), name
    assert {(entry["suite"], entry["metric"]) for entry in evaluation["metrics"].values()} == set(rows)
    facts = evaluation["metrics"]["company_facts_token_f1"]
    assert facts["value"] > facts["baseline"] + 0.3  # the trained version knows the facts, the base model does not
    assert rows[("company_facts", "token_f1")]["verdict"] == "better"
    flips = evaluation["suites"]["company_facts"]["forgetting"]
    assert (f"company_facts: {evaluation['suites']['company_facts']['cases']} cases; right in both {flips['kept']}, "
            f"only v2 (Rejected) {flips['learned']}, only v1 (Approved) {flips['forgotten']}") in out
    lineage = evaluation["lineage"]
    assert Path(lineage["candidate"]["path"]).parent == Path(lineage["baseline"]["path"]).parent == cache_root(registry.home)
    for name in ("evaluation.json", "report.html", "cases.jsonl"):
        assert str(output / name) in out and (output / name).is_file()
    assert "comparing A = v2 (Rejected) with B = v1 (Approved) on company_facts, support_routing" in err


def test_compare_one_suite_and_the_errors(registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(registry, capsys, "compare", "3", "2", "--suites", "support_routing",
                          "--output-dir", str(tmp_path / "one"))
    assert code == 0, err
    evaluation = json.loads((tmp_path / "one" / "evaluation.json").read_text())
    assert list(evaluation["suites"]) == ["support_routing"]
    # v2 and v3 are the same weights: every metric but latency is the same.
    assert all(abs(e["delta"]) < 1e-9 for e in evaluation["metrics"].values() if e["metric"] != "latency_ms")
    for argv, message in [
        (("compare", "2", "9"), f"compare: model package group {GROUP!r} has no version 9"),
        (("compare", "2", "v2"), "compare: A and B are the same version (2)"),
        (("compare", "2", "4"), "compare: the artifact s3://"),
        (("compare", "2", "1", "--suites", "nope"), "compare: no staged suite named nope at "),
    ]:
        code, out, err = _cli(registry, capsys, *argv, "--output-dir", str(tmp_path / "err"))
        assert code == 1 and out == "" and err.startswith(message) and err.count("\n") == 1, (argv, err)


def _package(sagemaker: object, uri: str, status: str) -> None:
    sagemaker.create_model_package(  # type: ignore[attr-defined]
        ModelPackageGroupName=GROUP, ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [{"Image": "serving:1", "ModelDataUrl": uri}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]})


def test_try_with_aws_downloads_the_artifact_once(registry: Registry, questions: list[dict], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """--aws: the registry and S3 through boto3 (moto here); the archive is downloaded into the local home's cache."""
    import boto3
    from moto import mock_aws

    from pipelines.model_artifacts import materialize

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": CONFIG.project.region}.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    question = questions[0]
    with mock_aws():
        session = boto3.Session(region_name=CONFIG.project.region)
        s3 = session.client("s3")
        location = {} if CONFIG.project.region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": CONFIG.project.region}}
        s3.create_bucket(Bucket=CONFIG.project.bucket, **location)
        s3.upload_file(str(registry.trained_archive), CONFIG.project.bucket, "models/v1/model.tar.gz")
        sagemaker = session.client("sagemaker")
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        _package(sagemaker, f"s3://{CONFIG.project.bucket}/models/v1/model.tar.gz", "Rejected")
        first = _run(home, capsys, "try", "1", question["prompt"], "--aws",
                     "--max-new-tokens", "16")
        _, cached = materialize(Backend("aws", session), f"s3://{CONFIG.project.bucket}/models/v1/model.tar.gz",
                                cache_root(home))
        _package(sagemaker, f"s3://{CONFIG.project.bucket}/models/v2/model.tar.gz", "PendingManualApproval")
        missing = _run(home, capsys, "try", "2", "--aws", "hi")
    assert first[0] == 0, first[2]
    assert first[1] == question["completion"] + "\n" and "version 1 (Rejected; not deployed)" in first[2]
    assert cached  # same ETag: not downloaded again
    unpacked = list(cache_root(home).iterdir())
    assert len(unpacked) == 1 and (unpacked[0] / "model.safetensors").is_file()
    assert missing[0] == 1 and missing[2] == (f"try: the artifact s3://{CONFIG.project.bucket}/models/v2/model.tar.gz "
                                              "is missing from S3\n")


def test_a_replaced_artifact_is_unpacked_again(tmp_path: Path) -> None:
    """The cache is keyed by the URI and remembers what it unpacked: a new object at the same URI replaces it."""
    from pipelines.model_artifacts import materialize

    backend = local_backend(CONFIG, tmp_path / "home")
    ensure_bucket(backend, CONFIG.project.bucket)
    uri = f"s3://{CONFIG.project.bucket}/models/x/model.tar.gz"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    seen = []
    for content in ("one", "two"):
        (folder / "weights.txt").write_text(content)
        backend.client("s3").upload_file(str(_tar(folder, tmp_path / f"{content}.tar.gz")), CONFIG.project.bucket,
                                         "models/x/model.tar.gz")
        for _ in range(2):
            target, cached = materialize(backend, uri, cache_root(backend.home))
            seen.append((cached, (target / "weights.txt").read_text()))
    assert seen == [(False, "one"), (True, "one"), (False, "two"), (True, "two")]
    assert [p.name for p in cache_root(backend.home).iterdir()] == [target.name]
