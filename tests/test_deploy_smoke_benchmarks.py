"""The smoke test's benchmark pass: suites scored through the live endpoint (stubbed runtime), in batches, gated."""
from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

import smoke_test

ENDPOINT = "continuum-staging"
CASES = [{"id": "a", "prompt": "Price of the X1?", "target": "$10"}, {"id": "b", "prompt": "Color?", "target": "red"},
         {"id": "c", "prompt": "Weight?", "target": "5 kg"}]


@pytest.fixture()
def suites_dir(tmp_path: Path) -> Path:
    suite = tmp_path / "benchmarks" / "facts"
    suite.mkdir(parents=True)
    (suite / "suite.yaml").write_text("name: facts\ntask: qa\nprompt_template: 'Q: {prompt}'\ndata: cases.jsonl\n"
                                      "metrics: [exact_match, token_f1]\n")
    (suite / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    return tmp_path / "benchmarks"


def _answer(texts: list[str]) -> dict:
    payload = json.dumps([{"generated_text": t} for t in texts]).encode()
    return {"Body": StreamingBody(io.BytesIO(payload), len(payload)), "ContentType": "application/json",
            "ResponseMetadata": {"HTTPStatusCode": 200}}


def _batch(prompts: list[str]) -> dict:
    return {"EndpointName": ENDPOINT, "ContentType": "application/json", "Accept": "application/json",
            "Body": json.dumps({"inputs": prompts, "parameters": {"max_new_tokens": 12}}).encode()}


def _runtime():
    return boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")


def test_suites_are_scored_in_batches_through_the_endpoint(suites_dir: Path, tmp_path: Path) -> None:
    runtime = _runtime()
    args = smoke_test.parse_args(["--endpoint-name", ENDPOINT, "--prompt", "Hi?", "--benchmarks-dir", str(suites_dir),
                                  "--gate-metric", "facts_token_f1", "--gate-threshold", "0.5", "--batch-size", "2",
                                  "--benchmark-max-new-tokens", "12"])
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", _answer(["hello"]), {
            "EndpointName": ENDPOINT, "ContentType": "application/json", "Accept": "application/json",
            "Body": json.dumps({"inputs": "Hi?", "parameters": {"max_new_tokens": 16}}).encode()})
        stub.add_response("invoke_endpoint", _answer(["$10", "red"]), _batch(["Q: Price of the X1?", "Q: Color?"]))
        stub.add_response("invoke_endpoint", _answer(["about 5 kg"]), _batch(["Q: Weight?"]))
        report = smoke_test.smoke_test(runtime, ENDPOINT, args.prompt, args.max_new_tokens, smoke_test.suites_from_args(args),
                                       (args.gate_metric, args.gate_threshold), args.benchmark_max_new_tokens,
                                       args.batch_size)
        stub.assert_no_pending_responses()
    facts = report["benchmarks"]["facts"]
    assert facts["cases"] == 3 and facts["failed_calls"] == 0
    assert facts["metrics"]["facts_exact_match"] == pytest.approx(2 / 3)
    assert facts["metrics"]["facts_token_f1"] == pytest.approx((1 + 1 + 0.8) / 3)
    assert report["gate"]["passed"] is True and report["passed"] is True


def test_gate_failure_and_failed_calls_fail_the_step(suites_dir: Path, tmp_path: Path, monkeypatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    runtime = _runtime()
    monkeypatch.setattr(boto3, "client", lambda service: runtime)
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", _answer(["hello"]), None)
        stub.add_client_error("invoke_endpoint", service_error_code="ModelError", service_message="boom",
                              http_status_code=424)
        stub.add_response("invoke_endpoint", _answer(["wrong"]), None)
        code = smoke_test.main(["--endpoint-name", ENDPOINT, "--prompt", "Hi?", "--benchmarks-dir", str(suites_dir),
                                "--gate-metric", "facts_exact_match", "--gate-threshold", "0.9", "--batch-size", "2",
                                "--output-dir", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "suite facts: cases 0-1: An error occurred (ModelError)" in err
    assert "gate failed: facts_exact_match = 0.0000 < 0.9 on the live endpoint" in err
    saved = json.loads((tmp_path / "out" / "smoke.json").read_text())
    assert saved["benchmarks"]["facts"]["failed_calls"] == 1 and saved["passed"] is False


def test_benchmark_arguments_are_checked(suites_dir: Path) -> None:
    with pytest.raises(smoke_test.SmokeTestError, match="--gate-metric needs --benchmarks-dir"):
        smoke_test.suites_from_args(smoke_test.parse_args(["--endpoint-name", "e", "--prompt", "p",
                                                           "--gate-metric", "x"]))
    with pytest.raises(smoke_test.SmokeTestError, match=r"suite\(s\) \['nope'\] not found"):
        smoke_test.suites_from_args(smoke_test.parse_args(["--endpoint-name", "e", "--prompt", "p", "--benchmarks-dir",
                                                           str(suites_dir), "--suites", "nope"]))
    suites = smoke_test.suites_from_args(smoke_test.parse_args(["--endpoint-name", "e", "--prompt", "p",
                                                                "--benchmarks-dir", str(suites_dir)]))
    with pytest.raises(smoke_test.SmokeTestError, match="not produced by the suites"):
        smoke_test.benchmark_gate({"facts": {"metrics": {"facts_f1": 1.0}, "higher_is_better": {"facts_f1": True}}},
                                  "other_metric", 0.5)
    assert [s.name for s in suites] == ["facts"]


def test_check_only_passes_without_calling_the_endpoint(suites_dir: Path, monkeypatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(boto3, "client", lambda service: pytest.fail("--check-only must call no endpoint"))
    code = smoke_test.main(["--endpoint-name", ENDPOINT, "--prompt", "Hi?", "--benchmarks-dir", str(suites_dir),
                            "--gate-metric", "facts_token_f1", "--check-only"])
    assert code == 0
    assert "the gate metric facts_token_f1 can be scored through the endpoint" in capsys.readouterr().out


def test_check_only_fails_when_no_live_suite_gives_the_gate_metric(suites_dir: Path, monkeypatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    offline = suites_dir / "ppl"
    offline.mkdir()
    (offline / "suite.yaml").write_text("name: ppl\ntask: perplexity\ndata: cases.jsonl\nmetrics: [perplexity]\n")
    (offline / "cases.jsonl").write_text(json.dumps({"id": "a", "text": "The X1 costs $10."}) + "\n")
    monkeypatch.setattr(boto3, "client", lambda service: pytest.fail("--check-only must call no endpoint"))
    for metric in ("borealis_facts_token_f1", "ppl_perplexity"):
        code = smoke_test.main(["--endpoint-name", ENDPOINT, "--prompt", "Hi?", "--benchmarks-dir", str(suites_dir),
                                "--gate-metric", metric, "--check-only"])
        err = capsys.readouterr().err
        assert code == 1
        assert f"--gate-metric {metric!r} is not produced through the endpoint" in err
        assert "['facts_exact_match', 'facts_token_f1']" in err and "scored offline only: ppl (perplexity)" in err
