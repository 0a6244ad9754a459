"""The HTML evaluation report, and `continuum report VERSION` locally and against (moto) AWS."""
from __future__ import annotations

import builtins
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from evaluate.compare import ModelResults, SuiteInfo, build_metrics, forgetting_summary, suite_section
from evaluate.gate import compute_gate
from evaluate.tasks import CaseOutcome, SuiteRun
from evaluate.report_html import render_report, write_report_html
from pipelines.cli import main as cli_main
from pipelines.config import load_config

CONFIG = load_config()
GROUP = CONFIG.model.model_package_group


def _run(f1: list[float], answers: list[str]) -> SuiteRun:
    outcomes = tuple(
        CaseOutcome(f"q{i}", f"Question <{i}> & more?", "30 days", answer, {"token_f1": score}, score == 1.0,
                    "policies.md")
        for i, (score, answer) in enumerate(zip(f1, answers))
    )
    return SuiteRun({"token_f1": sum(f1) / len(f1)}, outcomes, seconds=0.02)


def _evaluation() -> dict[str, Any]:
    info = SuiteInfo("facts", "qa", "2", "built-in", ("token_f1",), {"token_f1": True}, threshold=0.9)
    candidate = ModelResults(0.7, {"facts": _run([1.0, 0.0, 0.5], ["30 days", "<script>alert(1)</script>", "30"])})
    baseline = ModelResults(0.9, {"facts": _run([1.0, 1.0, 0.5], ["30 days", "30 days", "30"])})
    metrics = build_metrics([info], candidate, baseline)
    suites = {"facts": suite_section(info, candidate.runs["facts"], baseline.runs["facts"])}
    return {
        "metrics": metrics,
        "suites": suites,
        "inventory": None,
        "forgetting": forgetting_summary(suites),
        "lineage": {"candidate": {"base_model": "tiny", "hyperparameters": {"lora_r": 8}},
                    "baseline": {"described_as": "version 4", "version": 4},
                    "data": {"data_version": "feedbeefcafe0123456789"},
                    "benchmarks": {"facts": {"task": "qa", "version": "2", "cases": 3, "fingerprint": "abcd"}}},
        "gate": compute_gate(metrics, "facts_token_f1", 0.5, 0.05, True),
        "created": "2026-11-23 10:00 UTC",
    }


def test_report_tells_the_story_and_escapes_text(tmp_path: Path) -> None:
    evaluation = _evaluation()
    path = write_report_html(evaluation, tmp_path)
    page = path.read_text(encoding="utf-8")
    assert path.name == "report.html" and page.startswith("<!doctype html>")
    assert "candidate vs version 4" in page and "data version feedbeefcafe0123" in page
    assert "Gate failed" in page
    # the regression reason and the suite threshold reason, each naming benchmark, metric, value and threshold
    assert "benchmark facts metric token_f1 = 0.5 regressed by 0.333333 vs baseline 0.833333 (MaxRegression 0.05)" in page
    assert "benchmark facts metric token_f1 = 0.5 is not &gt;= threshold 0.9 (suite.yaml threshold)" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "Question &lt;1&gt; &amp; more?" in page  # the regressed case, with both answers
    assert "forgot 1" in page and "No knowledge inventory was kept" in page
    assert len(re.findall(r"src='data:image/png;base64,", page)) == 3
    assert "&quot;lora_r&quot;: 8" in page and "abcd" in page


def test_report_lists_forgotten_items_and_the_inventory_coverage() -> None:
    from common.inventory import Item, merge
    from evaluate.retention import Retention, RoundPlan, inventory_section

    items = [Item(f"i{n}", f"Question {n}?", "yes", "faq.jsonl:1", "v1" if n < 3 else "v2", known=n != 4,
                  checked_in="v2") for n in range(5)]
    plan = RoundPlan("v2", 3, 3, merge(items[:3], [], "v2"), tuple(items[:3]), ())
    forgot = Retention(3, 3, 0, [{"id": "i0", "prompt": "Is <b>this</b> kept?", "expected": "30 days",
                                  "candidate": "<i>no</i>", "baseline": "30 days", "data_version": "v1",
                                  "source": "faq.jsonl:1"}])
    evaluation = {**_evaluation(), "inventory": inventory_section(plan, forgot, items, 0.1)}
    page = render_report(evaluation)
    assert "forgetting (known items)" in page and "33.3% (1/3)" in page
    assert "The candidate <b>forgot 1</b>: forgetting 33.3% (MaxForgetting 0.1)" in page
    assert "Is &lt;b&gt;this&lt;/b&gt; kept?" in page and "&lt;i&gt;no&lt;/i&gt;" in page
    assert "This version's inventory: 5 items from 2 data version(s) (0 new, 0 superseded by new answers)" in page
    assert "<td>v2</td><td class=\"num\">2</td><td class=\"num\">2</td><td class=\"num\">1</td>" in page
    assert "token F1 &gt;= 0.9" in page


def test_report_without_matplotlib_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    page = render_report(_evaluation())
    assert "Plots omitted: matplotlib is not installed" in page and "data:image/png" not in page


def _register(sagemaker: Any, metadata: dict[str, str], metrics_uri: str) -> None:
    try:
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    except sagemaker.exceptions.ClientError:
        pass
    sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        InferenceSpecification={"Containers": [{"Image": "img:1", "ModelDataUrl": "s3://b/model.tar.gz"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}}},
        CustomerMetadataProperties=metadata,
        ModelApprovalStatus="PendingManualApproval",
    )


def test_report_command_prints_the_local_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.backend import local_backend
    from pipelines.local.s3 import LocalS3

    home = tmp_path / "home"
    backend = local_backend(CONFIG, home)
    sagemaker = backend.client("sagemaker")
    s3 = LocalS3(home / "s3")
    first = f"s3://{CONFIG.project.bucket}/run1/evaluation"
    s3.put_bytes(f"{first}/report.html", b"<html>v1</html>")
    s3.put_bytes(f"s3://{CONFIG.project.bucket}/run1/inventory/summary.json", json.dumps(
        {"items": 4, "checked": 2, "known": 1, "data_versions": 1,
         "by_data_version": {"d1": {"items": 4, "checked": 2, "known": 1}}}).encode())
    _register(sagemaker, {"evaluation_report_uri": f"{first}/report.html",
                          "inventory_uri": f"s3://{CONFIG.project.bucket}/run1/inventory"}, f"{first}/evaluation.json")
    second = f"s3://{CONFIG.project.bucket}/run2/evaluation"  # registered without the metadata: found beside evaluation.json
    s3.put_bytes(f"{second}/report.html", b"<html>v2</html>")
    _register(sagemaker, {"data_version": "x"}, f"{second}/evaluation.json")

    assert cli_main(["--home", str(home), "report", "1"]) == 0
    path, inventory, per_version = capsys.readouterr().out.strip().splitlines()
    assert path == str(s3.path(f"{first}/report.html"))
    assert inventory.startswith("knowledge inventory: 4 items from 1 data version(s), 2 checked (50%), 1 known (50% "
                                "of checked)")
    assert per_version == "  data version d1: 4 items, 2 checked, 1 known"
    assert cli_main(["--home", str(home), "report"]) == 0  # latest
    assert capsys.readouterr().out.strip().splitlines() == [str(s3.path(f"{second}/report.html")),
                                                            "knowledge inventory: not recorded"]
    assert cli_main(["--home", str(home), "report", "9"]) == 1
    assert "has no version 9 (has [2, 1])" in capsys.readouterr().out


def test_report_command_on_aws_gives_a_presigned_link(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        uri = f"s3://{CONFIG.project.bucket}/runs/7/evaluation/report.html"
        _register(boto3.client("sagemaker", region_name=CONFIG.project.region), {"evaluation_report_uri": uri},
                  uri.replace("report.html", "evaluation.json"))
        assert cli_main(["report", "1", "--aws"]) == 0
    uri_line, link, inventory = capsys.readouterr().out.strip().splitlines()
    assert inventory == "knowledge inventory: not recorded"
    assert uri_line == uri
    assert link.startswith(f"https://{CONFIG.project.bucket}.s3.amazonaws.com/runs/7/evaluation/report.html?")
    assert "X-Amz-Expires=3600" in link or "Expires=" in link


def test_the_candidates_lineage_carries_what_the_replay_budget_replayed_and_why() -> None:
    """continuum.json's strategy and replay record reach the report's lineage (issue 15: what, why, what it cost)."""
    from evaluate.lineage import model_lineage

    replay = {"budget": 0.1, "unit": "examples", "selection": "rotating", "replayed": 2,
              "items": [{"id": "a1", "source": "faq.csv", "score": 0.31, "reason": "known, lowest margin first"}]}
    metadata = {"base_model": "tiny", "strategy": {"names": ["replay", "ewc"]}, "replay": replay, "fisher": "x" * 9}
    lineage = model_lineage(metadata, Path("/m"))
    assert lineage["replay"] == replay and lineage["strategy"] == {"names": ["replay", "ewc"]}
    assert "fisher" not in lineage
    evaluation = _evaluation()
    evaluation["lineage"]["candidate"] = lineage
    page = render_report(evaluation)
    assert "known, lowest margin first" in page and "&quot;selection&quot;: &quot;rotating&quot;" in page
    online = {"selection": "online", "budget": 0.1, "unit": "examples", "amount": 4, "candidates": 36, "chosen": 26,
              "scored_tokens": 12454, "scoring_seconds": 0.38,
              "by_data_version": {"faq.csv": {"candidates": 20, "known": 18, "chosen": 15, "replays": 40, "at_risk": 1},
                                  "schedule.jsonl": {"candidates": 16, "known": 11, "chosen": 11, "replays": 40,
                                                     "at_risk": 0}},
              "items": [{"id": "fare-7", "source": "replay:faq.csv:7", "score": -0.39, "replays": 9,
                         "reason": "known by the previous version (margin 0.38); forgotten <now>"}]}
    evaluation["lineage"]["candidate"] = {**lineage, "replay": online, "data": {"replay_tokens_per_epoch": 181.4}}
    section = render_report(evaluation).split("<h2>Replay</h2>")[1].split("<h2>")[0]
    assert ("selection online, budget 0.1 examples (4 per epoch); 26 of 36 history examples replayed, 181 replayed "
            "tokens per epoch; 12454 tokens re-scored while training; scoring 0.38 s") in section
    assert "<td>schedule.jsonl</td><td class=\"num\">16</td><td class=\"num\">11</td>" in section
    assert "<td>fare-7</td><td>replay:faq.csv:7</td><td class=\"num\">9</td><td class=\"num\">-0.39</td>" in section
    assert "forgotten &lt;now&gt;" in section  # escaped
    evaluation["lineage"]["candidate"] = {"base_model": "tiny"}
    assert "Nothing replayed" in render_report(evaluation)
