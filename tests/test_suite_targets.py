"""Suite cases the data now answers differently are scored against the data's answer, and reported."""
from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

import smoke_test
from common.benchmarks import load_suites
from common.suite_targets import refresh_targets


def _suite(root: Path, name: str, task: str, cases: list[dict]) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    extra = "labels: [fares, other]\n" if task == "classification" else ""
    (folder / "suite.yaml").write_text(f"name: {name}\ntask: {task}\nprompt_template: '{{prompt}}'\ndata: cases.jsonl\n"
                                       f"metrics: [{'accuracy' if task == 'classification' else 'exact_match'}]\n{extra}")
    (folder / "cases.jsonl").write_text("".join(json.dumps(case) + "\n" for case in cases))


@pytest.fixture()
def suites_dir(tmp_path: Path) -> Path:
    root = tmp_path / "suites"
    _suite(root, "fares", "qa", [
        {"id": "gull", "prompt": "What is the adult fare to Gull Island?", "target": "$18"},
        {"id": "seal", "prompt": "What is the adult fare to Seal Point?", "target": "$12"},
        {"id": "chat", "messages": [{"role": "system", "content": "You are Tidewater's assistant."},
                                    {"role": "user", "content": "Can I bring a bike?"}], "target": "$4 each way"}])
    _suite(root, "routing", "classification", [{"id": "r", "prompt": "What is the adult fare to Gull Island?",
                                                "target": "other"}])
    return root


def _examples() -> list[dict]:
    bike_chat = [{"role": "system", "content": "You are Tidewater's assistant."},
                 {"role": "user", "content": "can I bring a bike"}, {"role": "assistant", "content": "$5 each way"}]
    return [
        {"prompt": "what is the adult fare to gull island", "completion": "$18", "source": "replay:faq.csv:2"},
        {"prompt": "What is the adult fare to Gull Island?", "completion": "$21", "source": "updates.jsonl:1"},
        {"prompt": "What is the adult fare to Seal Point?", "completion": "$12.", "source": "replay:faq.csv:3"},
        {"prompt": "Can I bring a bike?", "completion": "$5 each way", "source": "faq.csv:9"},  # no chat context
        {"prompt": "can I bring a bike", "completion": "$5 each way", "messages": bike_chat, "source": "chats.jsonl:4"},
    ]


def test_cases_the_data_answers_differently_take_its_answer(suites_dir: Path) -> None:
    suites = load_suites(suites_dir)
    refreshed, updates = refresh_targets(suites, _examples())
    fares = {case.id: case.target for case in next(s for s in refreshed if s.name == "fares").cases}
    # gull: the data answers both $18 (replayed) and $21 (this export): the suite's $18 is still one of them
    assert fares == {"gull": "$18", "seal": "$12", "chat": "$5 each way"}
    assert updates == [{"suite": "fares", "id": "chat", "prompt": "Can I bring a bike?", "suite_target": "$4 each way",
                        "data_answer": "$5 each way", "source": "chats.jsonl:4"}]
    routing = next(s for s in refreshed if s.name == "routing")
    assert routing is next(s for s in suites if s.name == "routing")  # options-scored suites are left alone


def test_this_exports_answer_wins_over_a_replayed_one(suites_dir: Path) -> None:
    examples = [{"prompt": "What is the adult fare to Gull Island?", "completion": "$19", "source": "replay:faq.csv:2"},
                {"prompt": "What is the adult fare to Gull Island?", "completion": "$21", "source": "updates.jsonl:1"}]
    refreshed, updates = refresh_targets(load_suites(suites_dir), examples)
    assert [(u["id"], u["data_answer"], u["source"]) for u in updates] == [("gull", "$21", "updates.jsonl:1")]
    assert refresh_targets(load_suites(suites_dir), [])[1] == []


def test_smoke_test_scores_the_live_endpoint_against_the_deployed_data(suites_dir: Path, tmp_path: Path, monkeypatch,
                                                                       capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "train"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(example) + "\n" for example in _examples()))
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    monkeypatch.setattr(boto3, "client", lambda service: runtime)

    def answer(texts: list[str]) -> dict:
        payload = json.dumps([{"generated_text": t} for t in texts]).encode()
        return {"Body": StreamingBody(io.BytesIO(payload), len(payload)), "ContentType": "application/json",
                "ResponseMetadata": {"HTTPStatusCode": 200}}

    with Stubber(runtime) as stub:
        stub.add_response("invoke_endpoint", answer(["hi"]), None)
        stub.add_response("invoke_endpoint", answer(["$18", "$12", "$5 each way"]), None)
        code = smoke_test.main(["--endpoint-name", "e", "--prompt", "Hi?", "--benchmarks-dir", str(suites_dir),
                                "--suites", "fares", "--gate-metric", "fares_exact_match", "--gate-threshold", "1.0",
                                "--data-dir", str(data), "--output-dir", str(tmp_path / "out")])
    assert code == 0
    assert "suite fares case chat: the data now answers '$5 each way' (suite: '$4 each way')" in capsys.readouterr().out
    saved = json.loads((tmp_path / "out" / "smoke.json").read_text())
    assert saved["benchmarks"]["fares"]["metrics"]["fares_exact_match"] == 1.0
