"""steps/smoke_test.py against a stubbed sagemaker-runtime: the exact requests, pass/fail and smoke.json."""
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


@pytest.fixture()
def runtime():
    return boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def expected_request(prompt: str, max_new_tokens: int = 16) -> dict:
    return {"EndpointName": ENDPOINT, "ContentType": "application/json", "Accept": "application/json",
            "Body": json.dumps({"inputs": prompt, "parameters": {"max_new_tokens": max_new_tokens}}).encode()}


def answer(payload: bytes) -> dict:
    return {"Body": StreamingBody(io.BytesIO(payload), len(payload)), "ContentType": "application/json",
            "InvokedProductionVariant": "AllTraffic", "ResponseMetadata": {"HTTPStatusCode": 200}}


def test_all_prompts_answered_pass(runtime) -> None:
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", answer(b'[{"generated_text": "Two years."}]'),
                          expected_request("Warranty?", 8))
        stub.add_response("invoke_endpoint", answer(b'[{"generated_text": "30 days."}]'),
                          expected_request("Returns?", 8))
        report = smoke_test.smoke_test(runtime, ENDPOINT, ["Warranty?", "Returns?"], 8)
        stub.assert_no_pending_responses()
    assert report["passed"] is True and report["failed"] == 0
    assert [r["generated_text"] for r in report["responses"]] == ["Two years.", "30 days."]
    assert all(r["status_code"] == 200 and r["variant"] == "AllTraffic" for r in report["responses"])
    assert all(r["latency_ms"] >= 0 for r in report["responses"])
    assert report["latency_ms"]["max"] >= report["latency_ms"]["mean"] >= 0


@pytest.mark.parametrize(("payload", "error"), [
    (b'[{"generated_text": "  "}]', "generated_text is empty"),
    (b'{"error": "boom"}', "has no"),
    (b"<html>oops</html>", "not JSON"),
])
def test_bad_answers_fail(runtime, payload: bytes, error: str) -> None:
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", answer(payload), expected_request("Q"))
        report = smoke_test.smoke_test(runtime, ENDPOINT, ["Q"], 16)
    assert report["passed"] is False and report["failed"] == 1
    assert error in report["responses"][0]["error"]


def test_model_error_fails_with_status(runtime) -> None:
    with Stubber(runtime) as stub:
        stub.add_client_error("invoke_endpoint", service_error_code="ModelError", http_status_code=424,
                              service_message="Received server error (500) from primary",
                              expected_params=expected_request("Q"))
        report = smoke_test.smoke_test(runtime, ENDPOINT, ["Q"], 16)
    response = report["responses"][0]
    assert response["passed"] is False and response["status_code"] == 424
    assert response["error"] == "ModelError: Received server error (500) from primary"


def test_main_writes_smoke_json_and_exit_code(runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys) -> None:
    monkeypatch.setattr(boto3, "client", lambda service: runtime)
    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", answer(b'[{"generated_text": "ok"}]'), expected_request("A"))
        stub.add_response("invoke_endpoint", answer(b'[{"generated_text": ""}]'), expected_request("B"))
        code = smoke_test.main(["--endpoint-name", ENDPOINT, "--prompt", "A", "--prompt", "B",
                                "--output-dir", str(tmp_path)])
    assert code == 1
    assert "1 of 2 prompts failed on endpoint continuum-staging" in capsys.readouterr().err
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert report["prompts"] == ["A", "B"] and [r["passed"] for r in report["responses"]] == [True, False]

    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", answer(b'[{"generated_text": "ok"}]'), expected_request("A"))
        assert smoke_test.main(["--endpoint-name", ENDPOINT, "--prompt", "A", "--output-dir", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "smoke.json").read_text())["passed"] is True


def test_blank_prompt_is_rejected(tmp_path: Path, capsys) -> None:
    assert smoke_test.main(["--endpoint-name", ENDPOINT, "--prompt", " ", "--output-dir", str(tmp_path)]) == 1
    assert "non-blank --prompt" in capsys.readouterr().err
    assert not (tmp_path / "smoke.json").exists()
