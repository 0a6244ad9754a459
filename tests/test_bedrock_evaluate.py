"""evaluate.py with Bedrock models (--candidate-model-id / --baseline-model-id, evaluate/remote.py): the same
suites, knowledge inventory and gate as a local model, answers from bedrock-runtime Converse (botocore Stubber for
the exact request; a before-call handler answering by question for a whole evaluation), every request checked
against botocore's shapes with the service limits; suites that need likelihoods are refused by name."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import evaluate
import evaluate.run
from evaluate.remote import RemoteModel, converse_request
from ferry_company import facts
from pipelines import permissions
from shape_limits import StrictValidator, request_problems

CANDIDATE = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/d1e2f3a4b5c6"
BASELINE = "amazon.nova-micro-v1:0"
ROUND1, ROUND2 = facts(1), facts(2)


def runtime() -> Any:
    return boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _reply(text: str) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 6, "totalTokens": 18}, "metrics": {"latencyMs": 40}}


def test_a_chat_becomes_one_converse_request() -> None:
    client = runtime()
    model = RemoteModel(CANDIDATE, client, "candidate", workers=1)
    chat = [{"role": "system", "content": "You answer for Tidewater Ferries."},
            {"role": "user", "content": ROUND1[0].question}]
    with Stubber(client) as stub:
        stub.add_response("converse", _reply(f" {ROUND1[0].answer}\n"), {
            "modelId": CANDIDATE, "system": [{"text": "You answer for Tidewater Ferries."}],
            "messages": [{"role": "user", "content": [{"text": ROUND1[0].question}]}],
            "inferenceConfig": {"maxTokens": 48, "temperature": 0.0}})
        assert model.generate([chat], 48) == [ROUND1[0].answer]
    assert request_problems(StrictValidator(), "bedrock-runtime", "Converse", converse_request(CANDIDATE, chat, 48)) == []
    assert permissions.iam_action("bedrock-runtime", "Converse") in permissions.STEP_ACTIONS["evaluate"]


class Answers:
    """bedrock-runtime answering by question: the candidate knows round 2's answers, the baseline none."""

    def __init__(self) -> None:
        self.known = {f.question: f.answer for f in ROUND1} | {f.question: f.answer for f in ROUND2}
        self.requests: list[dict[str, Any]] = []

    def client(self) -> Any:
        client = runtime()
        client.meta.events.register("before-parameter-build.bedrock-runtime.Converse",
                                    lambda params, **_: self.requests.append(json.loads(json.dumps(params))))
        client.meta.events.register("before-call.bedrock-runtime.Converse", self._answer)
        return client

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        body = json.loads(params["body"])
        question = body["messages"][-1]["content"][0]["text"]
        model = params["url_path"].split("/")[2]
        answer = self.known.get(question, "I do not know.") if "custom-model-deployment" in model else "I do not know."
        return type("Http", (), {"status_code": 200})(), _reply(answer)


@pytest.fixture()
def folders(tmp_path: Path) -> dict[str, Path]:
    """A qa suite on Tidewater's facts, the previous version's inventory (round 1, known) and round 2's train split."""
    suite = tmp_path / "benchmarks" / "ferry_facts"
    suite.mkdir(parents=True)
    (suite / "suite.yaml").write_text("name: ferry_facts\nversion: '1'\ntask: qa\ndata: cases.jsonl\n"
                                      "metrics: [exact_match, token_f1]\nhigher_is_better: true\n", encoding="utf-8")
    (suite / "cases.jsonl").write_text("".join(json.dumps({"id": f.id, "prompt": f.question, "target": f.answer}) + "\n"
                                               for f in ROUND1[:6]), encoding="utf-8")
    inventory, train = tmp_path / "inventory", tmp_path / "train"
    inventory.mkdir()
    train.mkdir()
    (inventory / "inventory.jsonl").write_text("".join(json.dumps({
        "id": f"{i:016x}", "prompt": f.question, "completion": f.answer, "source": f"faq.csv:{i + 2}",
        "data_version": "v1", "known": True, "checked_in": "v1"}) + "\n" for i, f in enumerate(ROUND1[6:14])),
        encoding="utf-8")
    (train / "train.jsonl").write_text("".join(json.dumps({
        "id": f"{i + 100:016x}", "prompt": f.question, "completion": f.answer, "source": f"delta.csv:{i + 2}"}) + "\n"
        for i, f in enumerate(ROUND2)), encoding="utf-8")
    return {"benchmarks": suite.parent, "inventory": inventory, "train": train, "out": tmp_path / "out",
            "inventory_out": tmp_path / "inventory_out"}


def _argv(folders: dict[str, Path], *extra: str) -> list[str]:
    return ["--benchmarks-dir", str(folders["benchmarks"]), "--validation-dir=", "--baseline-dir=",
            "--train-dir", str(folders["train"]), "--inventory-dir", str(folders["inventory"]),
            "--inventory-output-dir", str(folders["inventory_out"]), "--output-dir", str(folders["out"]),
            "--candidate-model-id", CANDIDATE, "--baseline-model-id", BASELINE, "--baseline-version", "0",
            "--baseline-model-package-arn", "none", "--max-new-tokens", "32", "--gate-metric", "ferry_facts_token_f1",
            "--gate-threshold", "0.8", "--gate-max-forgetting", "0.1", *extra]


def test_the_same_suites_inventory_and_gate_through_bedrock(folders: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    answers = Answers()
    monkeypatch.setattr(evaluate.run, "open_remote", lambda model_id, role: RemoteModel(model_id, answers.client(), role))
    assert evaluate.main(_argv(folders)) == 0
    report = json.loads((folders["out"] / "evaluation.json").read_text())
    assert report["metrics"]["ferry_facts_token_f1"]["value"] == pytest.approx(1.0)
    assert report["metrics"]["ferry_facts_token_f1"]["baseline"] < 0.5
    assert report["gate"]["passed"] is True
    assert report["lineage"]["candidate"]["bedrock_model_id"] == CANDIDATE
    changed = {f.question for f in ROUND2}  # round 2 supersedes these: not re-asked
    assert report["inventory"]["retention"]["asked"] == sum(f.question not in changed for f in ROUND1[6:14]) > 0
    inventory = [json.loads(line) for line in (folders["inventory_out"] / "inventory.jsonl").read_text().splitlines()]
    assert {item["prompt"] for item in inventory} >= {f.question for f in ROUND2}
    models = {request["modelId"] for request in answers.requests}
    assert models == {CANDIDATE, BASELINE}
    validator = StrictValidator()
    assert all(request_problems(validator, "bedrock-runtime", "Converse", r) == [] for r in answers.requests)
    retention = [r for r in answers.requests if r["inferenceConfig"]["maxTokens"] == 256]
    assert retention, "inventory checks ask with room for a trained answer"


def test_a_weak_candidate_fails_the_gate_the_same_way(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    answers = Answers()
    answers.known = {}
    monkeypatch.setattr(evaluate.run, "open_remote", lambda model_id, role: RemoteModel(model_id, answers.client(), role))
    assert evaluate.main(_argv(folders)) == 0
    gate = json.loads((folders["out"] / "evaluation.json").read_text())["gate"]
    assert gate["passed"] is False and "ferry_facts_token_f1" in json.dumps(gate)


def test_suites_that_need_likelihoods_are_refused_by_name(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(evaluate.run, "open_remote", lambda *_: pytest.fail("no model is asked"))
    repo_benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    argv = _argv(folders, "--gate-metric", "company_quiz_accuracy")
    argv[argv.index("--benchmarks-dir") + 1] = str(repo_benchmarks)
    assert evaluate.main([*argv, "--suites", "company_quiz"]) == 2
    assert "company_quiz (multiple_choice) need log-likelihoods" in capsys.readouterr().err
