"""Drift monitoring: the capture parser, the baseline and the check in Model Monitor's formats, CloudWatch out."""
from __future__ import annotations

import base64
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import monitor
from monitor.capture import CaptureFormatError, llm_rows, parse_capture_line, read_capture_tree
from monitor.signals import Alphabet, TopicIndex, outlier_share, wilson_interval
from monitor.text import normalise, words
from pipelines.demo.sample_data import facts
from pipelines.local.capture import CaptureWriter, Exchange, build_capture_record
from pipelines.local.s3 import LocalS3

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
CAPTURE = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": "s3://monitor-test/capture",
           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
           "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"], "CsvContentTypes": ["text/csv"]}}
TRAINING = [(fact.question, fact.answer) for round_no in (1, 2) for fact in facts(round_no)]
OFF_TOPIC = ["How do I bake sourdough bread at home with a cast iron pot?", "Write a python function that reverses a list.",
             "What is the capital of Mongolia and how many people live there?", "Explain quantum entanglement simply.",
             "Which football club has won the most championships in Spain?", "How long should I boil an egg?"]


def _record_line(request: bytes, request_type: str, response: bytes | None, response_type: str = "application/json",
                 header: dict | None = None) -> str:
    config = {**CAPTURE, "CaptureContentTypeHeader": header} if header is not None else CAPTURE
    if response is None:
        config = {**config, "CaptureOptions": [{"CaptureMode": "Input"}]}
    record = build_capture_record(config, Exchange(request, request_type, response or b"", response_type), "e-1", NOW)
    return json.dumps(record)


# ------------------------------------------------------------------------------------------ capture parser
def test_parser_reads_json_csv_base64_and_missing_outputs() -> None:
    json_line = _record_line(b'{"inputs": ["q1", "q2"], "parameters": {"max_new_tokens": 8}}', "application/json",
                             b'[{"generated_text": "a1"}, {"generated_text": "a2"}]')
    csv_line = _record_line(b"first question\nsecond, with comma\n", "text/csv", b"answer one\n", "text/csv")
    base64_line = _record_line(b'{"inputs": "binary-ish"}', "application/x-custom", b"plain answer",
                               "application/octet-stream", header={})
    input_only = _record_line(b'{"inputs": "no output captured"}', "application/json", None)
    assert json.loads(base64_line)["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert json.loads(csv_line)["captureData"]["endpointInput"]["encoding"] == "CSV"

    rows = [row for line in (json_line, csv_line, base64_line, input_only)
            for row in llm_rows(parse_capture_line(line, "f.jsonl:1"))]
    assert [(r.prompt, r.response, r.max_new_tokens) for r in rows] == [
        ("q1", "a1", 8), ("q2", "a2", 8),  # a batch request: one row per input
        ("first question", "answer one", None), ("second", None, None),  # CSV: first column; one answer for two
        ("binary-ish", "plain answer", None),  # BASE64: JSON request, text response
        ("no output captured", None, None),  # Input-only capture
    ]
    assert parse_capture_line(base64_line, "x")["input"]["body"] == b'{"inputs": "binary-ish"}'


def test_parser_names_file_and_line_of_bad_records(tmp_path: Path) -> None:
    folder = tmp_path / "ep" / "AllTraffic" / "2026" / "11" / "23" / "12"
    folder.mkdir(parents=True)
    good = _record_line(b'{"inputs": "fine"}', "application/json", b'[{"generated_text": "ok"}]')
    bad_base64 = json.loads(good)
    bad_base64["captureData"]["endpointInput"] = {"observedContentType": "x", "mode": "INPUT", "data": "%%%",
                                                  "encoding": "BASE64"}
    (folder / "00-00-000-a.jsonl").write_text(f"{good}\nnot json\n{json.dumps(bad_base64)}\n")
    with pytest.raises(CaptureFormatError, match=r"00-00-000-a\.jsonl:2: not a SageMaker data capture record"):
        list(read_capture_tree(tmp_path / "ep"))
    rows, records, problems = monitor.read_traffic(tmp_path / "ep", None)
    assert [r.prompt for r in rows] == ["fine"] and records == 1
    assert [p["source"].rsplit(":", 1)[1] for p in problems] == ["2", "3"]
    assert "BASE64 data does not decode" in problems[1]["reason"]
    with pytest.raises(CaptureFormatError, match='x:1: endpointInput: request is neither text nor a JSON object'):
        llm_rows(parse_capture_line(_record_line(b'{"prompt": "wrong key"}', "application/json", None), "x:1"))


def test_chat_requests_count_their_last_user_message_as_the_prompt() -> None:
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Price of S2?"},
                         {"role": "assistant", "content": "$399"}, {"role": "user", "content": "And the M5?"}]}
    line = _record_line(json.dumps({"inputs": [chat, "plain question"]}).encode(), "application/json",
                        b'[{"generated_text": "$1,299"}, {"generated_text": "ok"}]')
    rows = llm_rows(parse_capture_line(line, "f.jsonl:1"))
    assert [(r.prompt, r.response) for r in rows] == [("And the M5?", "$1,299"), ("plain question", "ok")]
    no_user = _record_line(b'{"inputs": {"messages": [{"role": "system", "content": "x"}]}}', "application/json", None)
    with pytest.raises(CaptureFormatError, match=r"f.jsonl:2: .*a chat input must be .* with a user message"):
        llm_rows(parse_capture_line(no_user, "f.jsonl:2"))


# ------------------------------------------------------------------------------------------ statistics
def test_signals_coverage_letters_and_outlier_share() -> None:
    index = TopicIndex([words(normalise(q)) for q in ("How much does the Rover X1 cost?", "What is the warranty?",
                                                      "How long is the return window?")])
    coverage = index.coverage([words(normalise(q)) for q in (
        "Hi! Could you tell me: how much does the Rover X1 cost? Thanks!", "How do I bake bread?", "", "rover x1")])
    assert coverage[0] == pytest.approx(1.0) and coverage[1] < 0.3 and coverage[2] == 0.0 and 0.3 < coverage[3] < coverage[0]
    alphabet = Alphabet.of([normalise("What is the warranty?"), "xyz"])
    assert list(alphabet.unseen_share(["quick question", "¿cuánto?", "сколько", "123", "naïve"])) == \
        [0.0, pytest.approx(1 / 6), 1.0, 0.0, pytest.approx(1 / 5)]
    quiet, loud = outlier_share(np.array([True] * 5 + [False] * 95), 0.05), outlier_share(np.array([True] * 20 + [False] * 80), 0.05)
    assert quiet.p_value > 0.3 and loud.p_value < 1e-5 and loud.share == 0.2 and loud.interval[0] < 0.2 < loud.interval[1]
    assert wilson_interval(0, 0) == (0.0, 1.0) and outlier_share(np.zeros(0, dtype=bool), 0.05).p_value == 1.0


# ------------------------------------------------------------------------------------------ baseline + check
@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("monitor")
    (root / "train").mkdir()
    (root / "train" / "part.jsonl").write_text("".join(
        json.dumps({"id": str(i), "prompt": p, "completion": c, "source": "t"}) + "\n" for i, (p, c) in enumerate(TRAINING)))
    assert monitor.main(["baseline", "--train-dir", str(root / "train"), "--output-dir", str(root / "baseline")]) == 0
    return root / "baseline"


def _write_traffic(s3_root: Path, endpoint: str, pairs: list[tuple[str, str]], when: datetime) -> Path:
    writer = CaptureWriter(LocalS3(s3_root))
    for index, (prompt, answer) in enumerate(pairs):
        moment = when + timedelta(seconds=index)
        exchange = Exchange(json.dumps({"inputs": prompt}).encode(), "application/json",
                            json.dumps([{"generated_text": answer}]).encode(), "application/json")
        writer.write(CAPTURE["DestinationS3Uri"], endpoint, "AllTraffic",
                     build_capture_record(CAPTURE, exchange, f"e{index}", moment), moment)
    return LocalS3(s3_root).path(f"{CAPTURE['DestinationS3Uri']}/{endpoint}")


def _check(baseline_dir: Path, capture_dir: Path, out: Path, *extra: str) -> dict:
    assert monitor.main(["check", "--baseline-dir", str(baseline_dir), "--capture-dir", str(capture_dir),
                         "--endpoint-name", capture_dir.name, "--since-hours", "0", "--output-dir", str(out),
                         *extra]) == 0
    return json.loads((out / "report.json").read_text())


def test_baseline_files_follow_model_monitor_formats(baseline_dir: Path) -> None:
    statistics = json.loads((baseline_dir / "statistics.json").read_text())
    constraints = json.loads((baseline_dir / "constraints.json").read_text())
    assert statistics["version"] == 0.0 and statistics["dataset"]["item_count"] == len(TRAINING)
    by_name = {f["name"]: f for f in statistics["features"]}
    length = by_name["prompt_length"]["numerical_statistics"]
    assert length["common"] == {"num_present": len(TRAINING), "num_missing": 0}
    assert sum(b["count"] for b in length["distribution"]["kll"]["buckets"]) == len(TRAINING)
    assert set(by_name) == {"prompt_length", "topic_coverage", "unseen_letter_share", "response_length"}
    assert by_name["topic_coverage"]["inferred_type"] == "Fractional"
    assert constraints["monitoring_config"]["distribution_constraints"]["perform_comparison"] == "Disabled"
    assert {c["name"] for c in constraints["features"]} == set(by_name)
    limits = constraints["continuum_constraints"]
    assert limits["baseline_refusal_rate"] == statistics["continuum"]["refusal_rate"]
    assert 0 < limits["topic_coverage_threshold"] < 1 and limits["calibration"]["topic_coverage_threshold"]["folds"] == 5
    assert len((baseline_dir / "reference.jsonl").read_text().splitlines()) == len(TRAINING)


def test_no_drift_on_traffic_like_the_training_data(baseline_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(3)
    capture = _write_traffic(tmp_path / "s3", "same", [rng.choice(TRAINING) for _ in range(300)], NOW)
    report = _check(baseline_dir, capture, tmp_path / "out", "--no-cloudwatch")
    assert report["verdict"] == "ok" and report["violations"] == [] and report["rows"] == 300
    assert json.loads((tmp_path / "out" / "constraint_violations.json").read_text()) == {"violations": []}
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["topic_coverage"]["value"] == 0.0 and checks["topic_coverage"]["detail"]["sample_size"] == 300
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert statistics["dataset"]["item_count"] == 300


def test_drift_detected_on_shifted_traffic(baseline_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(4)
    pairs = [(rng.choice(OFF_TOPIC), "I'm sorry, I cannot help with that.") if rng.random() < 0.6 else rng.choice(TRAINING)
             for _ in range(300)]
    capture = _write_traffic(tmp_path / "s3", "shifted", pairs, NOW)
    report = _check(baseline_dir, capture, tmp_path / "out", "--no-cloudwatch")
    assert report["verdict"] == "drift"
    assert set(report["violations"]) == {"topic_coverage", "refusal_rate"}
    violations = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())["violations"]
    drift = {v["feature_name"]: v for v in violations if "feature_name" in v}
    assert drift["topic_coverage"]["constraint_check_type"] == "baseline_drift_check"
    quality = {v["metric_name"]: v for v in violations if "metric_name" in v}
    assert quality["refusal_rate"]["constraint_check_type"] == "GreaterThanThreshold"


def test_window_and_too_few_rows(baseline_dir: Path, tmp_path: Path) -> None:
    old = _write_traffic(tmp_path / "s3", "windowed", [(p, "x") for p, _ in TRAINING[:40]],
                         datetime.now(timezone.utc) - timedelta(hours=30))
    _write_traffic(tmp_path / "s3", "windowed", [(OFF_TOPIC[0], "y")] * 5, datetime.now(timezone.utc))
    report = _check(baseline_dir, old, tmp_path / "out", "--no-cloudwatch", "--since-hours", "24")
    assert report["rows"] == 5 and report["verdict"] == "insufficient_data" and report["violations"] == []


def test_results_go_to_cloudwatch_with_an_alarm(baseline_dir: Path, tmp_path: Path) -> None:
    from pipelines.local.transport import local_boto3_session

    session = local_boto3_session(tmp_path / "home")
    cloudwatch = session.client("cloudwatch")
    api = session.local_transport.api
    dims = [{"Name": "EndpointName", "Value": "live"}, {"Name": "VariantName", "Value": "AllTraffic"}]
    api.cloudwatch.record("AWS/SageMaker", [("Invocations", dims, 1.0, "None"), ("Invocation5XXErrors", dims, 1.0, "None"),
                                            ("Invocation4XXErrors", dims, 0.0, "None"),
                                            ("ModelLatency", dims, 3_000_000.0, "Microseconds")])
    rng = random.Random(5)
    capture = _write_traffic(tmp_path / "s3", "live", [rng.choice(TRAINING) for _ in range(60)], datetime.now(timezone.utc))
    args = monitor.parse_args(["check", "--baseline-dir", str(baseline_dir), "--capture-dir", str(capture),
                               "--endpoint-name", "live", "--since-hours", "1", "--create-alarm",
                               "--output-dir", str(tmp_path / "out")])
    report = monitor.run_check(args, cloudwatch, datetime.now(timezone.utc))
    assert report["service_metrics"] == {"invocations": 1.0, "error_rate": 1.0, "latency_p90_ms": 3000.0}
    assert report["verdict"] == "degraded" and set(report["violations"]) == {"error_rate", "latency_p90_ms"}
    alarm = cloudwatch.describe_alarms(AlarmNames=["live-monitoring-violations"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM"
    published = cloudwatch.get_metric_statistics(
        Namespace="continuum/Monitoring", MetricName="feature_baseline_drift_topic_coverage",
        Dimensions=[{"Name": "Endpoint", "Value": "live"}], StartTime=datetime.now(timezone.utc) - timedelta(minutes=5),
        EndTime=datetime.now(timezone.utc) + timedelta(minutes=1), Period=600, Statistics=["Maximum"])["Datapoints"]
    assert published and published[0]["Maximum"] == 0.0


def test_bad_baseline_and_thresholds_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.jsonl").write_text('{"prompt": "only a prompt"}\n')
    assert monitor.main(["baseline", "--train-dir", str(tmp_path / "train"), "--output-dir", str(tmp_path / "b")]) == 1
    assert "a.jsonl:1: not a training example with prompt and completion" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        monitor.parse_args(["baseline", "--train-dir", "x", "--threshold", "no_such=1"])
    assert monitor.main(["check", "--baseline-dir", str(tmp_path / "none"), "--capture-dir", str(tmp_path),
                         "--endpoint-name", "e", "--no-cloudwatch", "--output-dir", str(tmp_path / "o")]) == 1
    assert "statistics.json: not found" in capsys.readouterr().err


def test_base64_bodies_decode_to_the_same_rows() -> None:
    body = json.dumps({"inputs": "same prompt"}).encode()
    as_base64 = json.dumps({"captureData": {"endpointInput": {"observedContentType": "application/octet-stream",
                                                              "mode": "INPUT", "encoding": "BASE64",
                                                              "data": base64.b64encode(body).decode()}},
                            "eventMetadata": {"eventId": "1", "inferenceTime": "2026-11-23T12:00:00Z"},
                            "eventVersion": "0"})
    assert [r.prompt for r in llm_rows(parse_capture_line(as_base64, "b64:1"))] == ["same prompt"]


def _capture_line(event: str, prompt: str = "q", **metadata: str) -> str:
    section = {"observedContentType": "application/json", "mode": "INPUT", "encoding": "JSON",
               "data": json.dumps({"inputs": prompt})}
    return json.dumps({"captureData": {"endpointInput": section},
                       "eventMetadata": {"eventId": event, "inferenceTime": "2026-11-23T10:00:00Z", **metadata},
                       "eventVersion": "0"})


def test_capture_reader_sections_records_and_files(tmp_path: Path) -> None:
    from monitor.capture import capture_files, capture_lines, decode_capture_data, decode_section

    assert decode_capture_data({"encoding": "JSON"}) == b""  # no data: an empty body
    with pytest.raises(ValueError, match=r"^'data' must be a string, got int$"):
        decode_capture_data({"encoding": "JSON", "data": 5})
    with pytest.raises(ValueError, match=r"^unknown capture encoding 'XML' \(expected one of JSON, CSV, BASE64\)$"):
        decode_capture_data({"encoding": "XML", "data": ""})
    assert decode_section({"encoding": "CSV", "data": "a,b"}) == {"content_type": "", "encoding": "CSV", "body": b"a,b",
                                                                  "value": "a,b"}
    assert decode_section({"encoding": "CSV", "data": "x", "observedContentType": "text/csv"})["content_type"] == "text/csv"
    parsed = parse_capture_line(_capture_line("e9", customAttributes="k=v"), "f:3")
    assert (parsed["event_id"], parsed["inference_time"], parsed["custom_attributes"], parsed["source"]) == \
        ("e9", "2026-11-23T10:00:00Z", "k=v", "f:3")
    assert parsed["output"] is None and parse_capture_line(_capture_line("e8"), "f:4")["custom_attributes"] is None

    root = tmp_path / "ep"
    files = {"AllTraffic/2026/11/23/11/b.jsonl": ["h11"], "Canary/2026/11/23/10/a.jsonl": ["c10"],
             "AllTraffic/2026/11/23/10/z.jsonl": ["h10a", "", "h10b"], "Zeta/early.jsonl": ["zeta"],
             "Alpha/late.jsonl": ["alpha"], "loose.jsonl": ["loose"]}
    for name, events in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("".join((_capture_line(e) if e else "  ") + "\n" for e in events), encoding="utf-8")
    assert [p.relative_to(root).as_posix() for p in capture_files(root)] == [
        "Canary/2026/11/23/10/a.jsonl", "AllTraffic/2026/11/23/10/z.jsonl", "AllTraffic/2026/11/23/11/b.jsonl",
        "Zeta/early.jsonl", "Alpha/late.jsonl", "loose.jsonl"]
    assert capture_files(tmp_path / "nowhere") == []
    everything = [(r["variant"], r["event_id"], r["source"].rsplit("/", 1)[1]) for r in read_capture_tree(root)]
    assert everything == [("Canary", "c10", "a.jsonl:1"), ("AllTraffic", "h10a", "z.jsonl:1"),
                          ("AllTraffic", "h10b", "z.jsonl:3"), ("AllTraffic", "h11", "b.jsonl:1"),
                          ("Zeta", "zeta", "early.jsonl:1"), ("Alpha", "alpha", "late.jsonl:1"), ("", "loose", "loose.jsonl:1")]
    recent = [(r["variant"], r["event_id"]) for r in read_capture_tree(root, since_hour="2026/11/23/11")]
    assert recent == [("AllTraffic", "h11"), ("Zeta", "zeta"), ("Alpha", "alpha"), ("", "loose")]
    assert [variant for variant, _, _ in capture_lines(root, "2026/11/24/00")] == ["Zeta", "Alpha", ""]
    assert len(list(capture_lines(root))) == 7  # no since_hour: every hour


def test_llm_rows_from_every_request_and_response_shape() -> None:
    from monitor.capture import request_prompts, response_texts

    def rows(request: Any, response: Any = None, source: str = "s:1") -> list[tuple]:
        record = {"input": {"value": request, "encoding": "JSON"}, "inference_time": "t0", "source": source,
                  "output": None if response is None else {"value": response, "encoding": "JSON"}}
        return [(r.prompt, r.response, r.max_new_tokens, r.inference_time, r.source) for r in llm_rows(record)]

    assert rows({"inputs": "q", "parameters": {"max_new_tokens": 8}}, {"generated_text": "a"}) == [("q", "a", 8, "t0", "s:1")]
    assert rows({"inputs": "q", "parameters": {"max_new_tokens": True}}, [["x"]]) == [("q", "x", None, "t0", "s:1")]
    assert rows({"inputs": ["a", "b"], "parameters": {"max_new_tokens": "8"}}, [[{"generated_text": "A"}], []]) == \
        [("a", "A", None, "t0", "s:1"), ("b", None, None, "t0", "s:1")]
    assert rows({"inputs": ["a", "b"]}, ["A", {"generated_text": 5}]) == [("a", "A", None, "t0", "s:1"), ("b", None, None, "t0", "s:1")]
    assert rows({"inputs": "q"}, 5) == [("q", None, None, "t0", "s:1")]
    chat = {"messages": [{"role": "user", "content": "first"}, {"role": "user", "content": "second"},
                         {"role": "assistant", "content": "x"}, {"role": "user", "content": "third"}]}
    assert rows({"inputs": chat}) == [("third", None, None, "t0", "s:1")]
    assert request_prompts({"inputs": "q", "parameters": [1]}, "JSON") == (["q"], {})
    assert response_texts("a\n\nb\n", "CSV", 3) == ["a", "", "b"]
    for bad in ({"inputs": []}, {"inputs": [1]}):
        with pytest.raises(ValueError, match=r'^"inputs" must be a string, a \{"messages": \[\.\.\.\]\} chat or a list of those$'):
            request_prompts(bad, "JSON")
    long = ["x" * 200]
    with pytest.raises(ValueError) as raised:
        request_prompts(long, "JSON")
    assert str(raised.value) == f'request is neither text nor a JSON object with "inputs": {str(long)[:120]!r}'
    for chat_input in ({"messages": "hi"}, {"messages": [{"role": "user", "content": 5}]}, {"text": "no messages"}):
        with pytest.raises(CaptureFormatError, match=r'^s:1: endpointInput: a chat input must be \{"messages": \[\.\.\.\]\} '
                                                      r'with a user message whose content is a string$'):
            rows({"inputs": chat_input})
    with pytest.raises(CaptureFormatError, match=r"^s:2: the record has no endpointInput \(capture Input to monitor\)$"):
        llm_rows({"input": None, "source": "s:2"})
    undecodable = {"input": {"value": b'{"inputs": "q"}', "encoding": "BASE64"}, "inference_time": "t", "source": "s:3",
                   "output": {"value": b"\xff\xfe", "encoding": "BASE64"}}
    with pytest.raises(CaptureFormatError, match=r"^s:3: endpointOutput: 'utf-8' codec can't decode"):
        llm_rows(undecodable)
