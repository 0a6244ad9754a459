"""Local endpoints (pipelines/local/endpoints.py) and data capture (pipelines/local/capture.py).

Capture format, sampling and safe unpacking are tested directly; the endpoint lifecycle runs the real
serving code on the tiny model: deploy, /ping, invoke, capture, gap-free redeploy, restart after a
kill, delete.
"""
from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import shutil
import signal
import tarfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipelines.local.capture import (CaptureWriter, Exchange, Sampler, build_capture_record, encode_capture_data,
                                     read_capture_records)
from pipelines.local.endpoints import (EndpointNotFoundError, EndpointStartError, LocalEndpoints, ModelInvocationError,
                                       safe_extract)
from pipelines.local.s3 import LocalS3
from waiting import Tally

CAPTURE_URI = "s3://capture-bucket/data-capture"
JSON_CAPTURE = {
    "EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": CAPTURE_URI,
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
}
WHEN = datetime(2026, 11, 23, 10, 4, 5, 678000, tzinfo=timezone.utc)
FILE_NAME = re.compile(r"^\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$")


# ------------------------------------------------------------------------------------------ capture format
def test_capture_record_is_sagemakers_format() -> None:
    exchange = Exchange(b'{"inputs": "hi"}', "application/json", b'[{"generated_text": "yo"}]',
                        "application/json; charset=utf-8", custom_attributes="trace=abc")
    record = build_capture_record(JSON_CAPTURE, exchange, "evt-1", WHEN)
    assert record == {
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": '{"inputs": "hi"}', "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json; charset=utf-8", "mode": "OUTPUT",
                               "data": '[{"generated_text": "yo"}]', "encoding": "JSON"},
        },
        "eventMetadata": {"eventId": "evt-1", "inferenceTime": "2026-11-23T10:04:05Z", "customAttributes": "trace=abc"},
        "eventVersion": "0",
    }


def test_encoding_follows_capture_content_type_header() -> None:
    header = {"JsonContentTypes": ["application/json"], "CsvContentTypes": ["text/csv"]}
    assert encode_capture_data(b"1,2", "text/csv", header) == ("1,2", "CSV")
    assert encode_capture_data(b"\x00\xff", "application/octet-stream", header) == ("AP8=", "BASE64")
    assert encode_capture_data(b'{"a": 1}', "application/json", None) == (base64.b64encode(b'{"a": 1}').decode(),
                                                                          "BASE64")  # no header config: all BASE64
    assert encode_capture_data(b"\xff\xfe", "application/json", header)[1] == "BASE64"  # not UTF-8 after all


@pytest.mark.parametrize("content_type", ["application/json", "APPLICATION/JSON", "application/json; charset=utf-8",
                                          " Application/Json ;charset=UTF-8", "application/json;charset=utf-8"])
def test_capture_content_types_are_normalised(content_type: str, tmp_path: Path) -> None:
    """Case, parameters and spaces do not change a body's encoding; the observed type is kept as sent."""
    configured = {"JsonContentTypes": ["Application/JSON"], "CsvContentTypes": ["TEXT/CSV; charset=utf-8"]}
    assert encode_capture_data(b'{"a": 1}', content_type, configured) == ('{"a": 1}', "JSON")
    assert encode_capture_data(b"1,2", content_type.lower().replace("application/json", "text/csv"),
                               configured) == ("1,2", "CSV")
    assert encode_capture_data(b"1,2", content_type.lower().replace("json", "jsonl"), configured) == ("MSwy", "BASE64")
    exchange = Exchange(b'{"inputs": "hi"}', content_type, b'[{"generated_text": "yo"}]', content_type)
    record = build_capture_record(JSON_CAPTURE, exchange, "evt-1", WHEN)
    for section in record["captureData"].values():
        assert section["encoding"] == "JSON" and section["observedContentType"] == content_type
    s3 = LocalS3(tmp_path / "s3")
    CaptureWriter(s3).write(CAPTURE_URI, "ep", "AllTraffic", record, WHEN)
    [read] = read_capture_records(s3, CAPTURE_URI, "ep")
    assert read["input"]["value"] == {"inputs": "hi"} and read["output"]["value"] == [{"generated_text": "yo"}]
    assert read["input"]["content_type"] == content_type


def test_input_only_capture_has_no_output_and_no_custom_attributes() -> None:
    config = {**JSON_CAPTURE, "CaptureOptions": [{"CaptureMode": "Input"}]}
    record = build_capture_record(config, Exchange(b"{}", "application/json", b"[]", "application/json"), "e", WHEN)
    assert list(record["captureData"]) == ["endpointInput"]
    assert "customAttributes" not in record["eventMetadata"]
    with pytest.raises(ValueError, match="unknown CaptureMode 'Both'"):
        build_capture_record({**JSON_CAPTURE, "CaptureOptions": [{"CaptureMode": "Both"}]},
                             Exchange(b"{}", "application/json", b"[]", "application/json"), "e", WHEN)


def test_writer_layout_and_reader_round_trip(tmp_path: Path) -> None:
    s3 = LocalS3(tmp_path / "s3")
    writer = CaptureWriter(s3)
    json_exchange = Exchange(b'{"inputs": "q"}', "application/json", b'[{"generated_text": "a"}]', "application/json")
    binary_exchange = Exchange(b"\x89PNG\x00", "image/png", b"\x01\x02", "application/octet-stream", "k=v")
    first = writer.write(CAPTURE_URI, "ep", "AllTraffic", build_capture_record(JSON_CAPTURE, json_exchange, "e1", WHEN),
                         WHEN)
    second = writer.write(CAPTURE_URI, "ep", "AllTraffic",
                          build_capture_record(JSON_CAPTURE, binary_exchange, "e2", WHEN), WHEN)
    assert first == second  # one file per hour per writer
    relative = first.relative_to(s3.path(CAPTURE_URI))
    assert relative.parts[:6] == ("ep", "AllTraffic", "2026", "11", "23", "10") and FILE_NAME.match(relative.name)
    assert relative.name.startswith("04-05-678-")

    records = list(read_capture_records(s3, CAPTURE_URI, "ep"))
    assert [r["event_id"] for r in records] == ["e1", "e2"]
    assert records[0]["captureData"]["endpointInput"]["encoding"] == "JSON"  # the raw record is kept as is
    assert records[0]["input"]["value"] == {"inputs": "q"} and records[0]["output"]["value"] == [{"generated_text": "a"}]
    assert records[1]["input"]["encoding"] == "BASE64" and records[1]["input"]["value"] == b"\x89PNG\x00"
    assert records[1]["output"]["body"] == b"\x01\x02" and records[1]["custom_attributes"] == "k=v"
    assert records[1]["variant"] == "AllTraffic" and records[1]["source"].endswith(":2")
    assert list(read_capture_records(s3, CAPTURE_URI, "other-endpoint")) == []


def test_reader_names_file_and_line_of_a_bad_record(tmp_path: Path) -> None:
    s3 = LocalS3(tmp_path / "s3")
    bad = s3.path(f"{CAPTURE_URI}/ep/AllTraffic/2026/11/23/10/00-00-000-x.jsonl")
    bad.parent.mkdir(parents=True)
    bad.write_text('{"captureData": {}, "eventMetadata": {"eventId": "a", "inferenceTime": "t"}}\n{"oops": 1}\n')
    with pytest.raises(ValueError, match=r"00-00-000-x\.jsonl:2: not a SageMaker data capture record"):
        list(read_capture_records(s3, CAPTURE_URI, "ep"))


def test_concurrent_appends_keep_whole_lines(tmp_path: Path) -> None:
    s3 = LocalS3(tmp_path / "s3")
    writer = CaptureWriter(s3)
    body = b'{"inputs": "' + b"x" * 20_000 + b'"}'

    def write_many(offset: int) -> None:
        for i in range(25):
            record = build_capture_record(JSON_CAPTURE, Exchange(body, "application/json", b"[]", "application/json"),
                                          f"e{offset + i}", WHEN)
            writer.write(CAPTURE_URI, "ep", "AllTraffic", record, WHEN)

    threads = [threading.Thread(target=write_many, args=(n * 100,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = list(read_capture_records(s3, CAPTURE_URI, "ep"))
    assert len(records) == 100 and len({r["event_id"] for r in records}) == 100


@pytest.mark.parametrize(("percent", "taken"), [(0, 0), (100, 20), (50, 10), (33, 7), (1, 1)])
def test_sampling_is_deterministic(percent: int, taken: int) -> None:
    sampler = Sampler(percent)
    decisions = [sampler.take() for _ in range(20)]
    assert sum(decisions) == taken
    assert decisions[0] is (percent > 0)  # a lone request is captured whenever capture is on
    with pytest.raises(ValueError, match="0..100"):
        Sampler(101)


def test_capture_config_prefix_and_sampling_details() -> None:
    from pipelines.local.capture import capture_enabled, capture_modes, capture_prefix, media_type

    assert media_type("Application/JSON; charset=utf-8; q=1") == "application/json" and media_type(None) == ""
    assert capture_modes({}) == set() and capture_modes({"CaptureOptions": [{"CaptureMode": "InputAndOutput"}]}) == \
        {"INPUT", "OUTPUT"}
    assert capture_enabled({"CaptureOptions": [{"CaptureMode": "Input"}]})  # EnableCapture defaults to true
    assert not capture_enabled(None) and not capture_enabled({}) and not capture_enabled({"EnableCapture": True})
    assert not capture_enabled({**JSON_CAPTURE, "EnableCapture": False})
    assert capture_prefix("s3://b/X/", "ep") == "s3://b/X/ep" and capture_prefix("s3://b/c", "ep", "v1") == "s3://b/c/ep/v1"
    sampler = Sampler(100)
    assert all(sampler.take() for _ in range(250))  # every request, also past the hundredth
    for percent, taken in ((50, 500), (33, 330), (1, 10)):
        sampler = Sampler(percent)
        assert sum(sampler.take() for _ in range(1000)) == taken


def test_capture_times_are_utc_whatever_the_local_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.local.capture import format_inference_time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert format_inference_time(WHEN) == "2026-11-23T10:04:05Z"
        record = build_capture_record(JSON_CAPTURE, Exchange(b"{}", "application/json", b"[]", "application/json"),
                                      "e", WHEN)
        path = CaptureWriter(LocalS3(tmp_path / "s3")).write(CAPTURE_URI, "ep", "AllTraffic", record, WHEN)
        assert path.parent.as_posix().endswith("/ep/AllTraffic/2026/11/23/10") and path.name.startswith("04-05-678-")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_writer_files_per_endpoint_hour_and_writer(tmp_path: Path) -> None:
    s3 = LocalS3(tmp_path / "s3")
    record = build_capture_record(JSON_CAPTURE, Exchange(b'{"inputs": "q"}', "application/json", b"[]", "application/json"),
                                  "e1", WHEN)
    first, later = CaptureWriter(s3), CaptureWriter(s3)
    paths = {first.write(CAPTURE_URI, "ep", "AllTraffic", record, WHEN),
             first.write(CAPTURE_URI, "other", "AllTraffic", record, WHEN),
             first.write(CAPTURE_URI, "ep", "Canary", record, WHEN),
             first.write(CAPTURE_URI, "ep", "AllTraffic", record, WHEN.replace(hour=11)),
             later.write(CAPTURE_URI, "ep", "AllTraffic", record, WHEN)}  # same folder, its own file
    assert len(paths) == 5
    path = first.write(CAPTURE_URI, "ep", "AllTraffic", record, WHEN)
    assert path.read_bytes() == (json.dumps(record, separators=(",", ":")) + "\n").encode() * 2


# ------------------------------------------------------------------------------------------ unpacking
def test_safe_extract_refuses_escaping_members(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"pwned"
        info = tarfile.TarInfo("../outside.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match=r"'\.\./outside\.txt' would extract outside"):
        safe_extract(archive, tmp_path / "dest")
    assert not (tmp_path / "outside.txt").exists()

    linked = tmp_path / "link.tar.gz"
    with tarfile.open(linked, "w:gz") as tar:
        info = tarfile.TarInfo("config.json")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match="unsafe member refused"):
        safe_extract(linked, tmp_path / "dest2")


def test_deploy_validates_input(tmp_path: Path) -> None:
    endpoints = LocalEndpoints(tmp_path / "home", LocalS3(tmp_path / "s3"))
    variant = {"VariantName": "AllTraffic", "ModelDataUrl": "s3://models/missing/model.tar.gz"}
    with pytest.raises(ValueError, match="EndpointName 'bad_name'"):
        endpoints.deploy("bad_name", [variant], None)
    with pytest.raises(ValueError, match=r"variants\[0\]\.ModelDataUrl is required"):
        endpoints.deploy("ep", [{"VariantName": "AllTraffic"}], None)
    with pytest.raises(ValueError, match="DestinationS3Uri must be an s3:// URI"):
        endpoints.deploy("ep", [variant], {**JSON_CAPTURE, "DestinationS3Uri": "/tmp/capture"})
    with pytest.raises(FileNotFoundError, match="ModelDataUrl s3://models/missing/model.tar.gz does not exist"):
        endpoints.deploy("ep", [variant], None)
    with pytest.raises(EndpointNotFoundError, match='Could not find endpoint "ep"'):
        endpoints.invoke("ep", b"{}", "application/json", "application/json", None)
    assert endpoints.status("ep") is None


# ------------------------------------------------------------------------------------------ live endpoints
def _package(model_dir: Path, s3: LocalS3, uri: str, workdir: Path) -> None:
    """A model.tar.gz with the tiny model and a continuum.json at its root, stored at ``uri``."""
    staged = workdir / "model"
    shutil.copytree(model_dir, staged)
    (staged / "continuum.json").write_text(json.dumps({
        "base_model": "tiny", "prompt_template": "Question: {prompt}\nAnswer:", "hyperparameters": {},
        "metrics": {}, "data": {}}))
    archive = workdir / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(staged.iterdir()):
            tar.add(path, arcname=path.name)
    s3.put_file(uri, archive)


def _request(prompt: str) -> bytes:
    return json.dumps({"inputs": prompt, "parameters": {"max_new_tokens": 4}}).encode()


def _ping(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status
    finally:
        connection.close()


def _process_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[-1].split()[0] == "Z":
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def live(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A deployed endpoint ``tiny`` (100% JSON capture) shared by the lifecycle tests; always torn down."""
    root = tmp_path_factory.mktemp("endpoints")
    s3 = LocalS3(root / "s3")
    model_uri = "s3://models/tiny/model.tar.gz"
    _package(tiny_model_dir, s3, model_uri, root)
    endpoints = LocalEndpoints(root / "home", s3, startup_timeout=180, seed=0)
    variants = [{"VariantName": "AllTraffic", "ModelDataUrl": model_uri, "Environment": {"CONTINUUM_TEST": "1"},
                 "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}]
    try:
        endpoints.deploy("tiny", variants, JSON_CAPTURE)
        yield endpoints, s3, variants
    finally:
        for name in endpoints.list_endpoints():
            for variant in endpoints.status(name)["variants"]:
                if variant["alive"]:
                    os.killpg(variant["pid"], signal.SIGKILL)


def test_deploy_ping_invoke_and_capture(live) -> None:
    endpoints, s3, _ = live
    status = endpoints.status("tiny")
    assert status["alive"] and status["variant"] == "AllTraffic"
    assert status["model"] == "s3://models/tiny/model.tar.gz" and Path(status["model_dir"], "config.json").is_file()
    assert _ping(status["port"]) == 200
    state = json.loads((endpoints.root / "tiny" / "state.json").read_text())
    assert state["variants"][0]["pid"] == status["pid"]

    body, content_type, variant = endpoints.invoke("tiny", _request("What is the warranty?"), "application/json",
                                                   "application/json", "case=capture")
    generated = json.loads(body)
    assert variant == "AllTraffic" and content_type.startswith("application/json")
    assert isinstance(generated[0]["generated_text"], str) and generated[0]["generated_text"]

    records = [r for r in read_capture_records(s3, CAPTURE_URI, "tiny") if r["custom_attributes"] == "case=capture"]
    assert len(records) == 1
    record = records[0]
    assert record["input"]["encoding"] == "JSON" and record["input"]["value"]["inputs"] == "What is the warranty?"
    assert record["output"]["encoding"] == "JSON" and record["output"]["value"] == generated
    assert record["eventVersion"] == "0" and record["variant"] == "AllTraffic"


def test_model_error_is_reported_not_captured(live) -> None:
    endpoints, s3, _ = live
    before = len(list(read_capture_records(s3, CAPTURE_URI, "tiny")))
    with pytest.raises(ModelInvocationError, match=r"Received client error \(4\d\d\) from AllTraffic"):
        endpoints.invoke("tiny", b"not json", "application/json", "application/json", None)
    assert len(list(read_capture_records(s3, CAPTURE_URI, "tiny"))) == before


def test_redeploy_swaps_without_failing_concurrent_requests(live) -> None:
    endpoints, s3, variants = live
    old = endpoints.status("tiny")
    errors: list[BaseException] = []
    answered: Tally[str] = Tally()
    stop = threading.Event()

    other_process = LocalEndpoints(endpoints.home, endpoints.s3)  # a caller the deploying instance cannot drain

    def traffic(caller: LocalEndpoints) -> None:
        while not stop.is_set():
            try:
                body, _, _ = caller.invoke("tiny", _request("Returns?"), "application/json", "application/json", None)
                answered.append(json.loads(body)[0]["generated_text"])
            except BaseException as error:  # noqa: BLE001 - every failure counts
                errors.append(error)

    threads = [threading.Thread(target=traffic, args=(caller,)) for caller in (endpoints, endpoints, other_process)]
    for thread in threads:
        thread.start()
    try:
        answered.wait_for(3)  # traffic flows before the swap,
        no_capture = {**JSON_CAPTURE, "InitialSamplingPercentage": 0}
        endpoints.deploy("tiny", [{**variants[0], "Environment": {"CONTINUUM_TEST": "2"}}], no_capture)
        served_by_new = len(answered)
        answered.wait_for(served_by_new + 3)  # and after it
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    new = endpoints.status("tiny")
    assert errors == []
    assert len(answered) > served_by_new > 0  # traffic flowed before, during and after the swap
    assert new["pid"] != old["pid"] and new["alive"] and _process_gone(old["pid"])

    captured = len(list(read_capture_records(s3, CAPTURE_URI, "tiny")))
    for _ in range(3):
        endpoints.invoke("tiny", _request("Hours?"), "application/json", "application/json", None)
    assert len(list(read_capture_records(s3, CAPTURE_URI, "tiny"))) == captured  # 0% sampling: nothing written


def test_restart_after_the_process_is_killed(live) -> None:
    endpoints, _, _ = live
    before = endpoints.status("tiny")
    os.killpg(before["pid"], signal.SIGKILL)
    assert _process_gone(before["pid"])
    assert endpoints.status("tiny")["alive"] is False

    fresh = LocalEndpoints(endpoints.home, endpoints.s3, startup_timeout=180)  # e.g. a later CLI command
    body, _, _ = fresh.invoke("tiny", _request("Warranty?"), "application/json", "application/json", None)
    assert json.loads(body)[0]["generated_text"]
    after = fresh.status("tiny")
    assert after["alive"] and after["pid"] != before["pid"] and after["port"] == _ping_port(after["port"])


def _ping_port(port: int) -> int:
    assert _ping(port) == 200
    return port


def test_startup_failure_shows_the_log_tail(live, tmp_path: Path) -> None:
    endpoints, s3, _ = live
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    s3.upload_dir(broken, "s3://models/broken")
    quick = LocalEndpoints(endpoints.home, s3, startup_timeout=60)
    with pytest.raises(EndpointStartError, match=r"(?s)exited during startup\. Log .*serve-.*\.log ends with:\n.+"):
        quick.deploy("broken", [{"VariantName": "AllTraffic", "ModelDataUrl": "s3://models/broken"}], None)
    assert quick.status("broken") is None


def test_delete_stops_the_process(live) -> None:
    endpoints, _, _ = live
    status = endpoints.status("tiny")
    endpoints.delete("tiny")
    assert _process_gone(status["pid"])
    assert endpoints.status("tiny") is None and not (endpoints.root / "tiny").exists()
    with pytest.raises(EndpointNotFoundError):
        endpoints.invoke("tiny", _request("x"), "application/json", "application/json", None)
