"""Feedback on captured answers: stored with provenance, staged as rows of the next data version (read by the
prepare step) and as the `feedback` suite (read by the evaluate step's suite loader)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import s3_layout
from pipelines.backend import Backend, local_backend
from pipelines.config import load_config
from pipelines.feedback import DATA_FILE, FEEDBACK_SUITE, list_feedback, record_feedback, with_feedback
from pipelines.staging import download_prefix, ensure_bucket, stage_benchmarks, stage_directory
from ferry_company import write_round as write_ferry_round

CONFIG = load_config()


def _exchange(event: str, prompt: str, answer: str, index: int = 0) -> dict:
    return {"event_id": event, "index": index, "endpoint": CONFIG.deploy.endpoint_name, "at": "2026-12-05T10:00:00Z",
            "prompt": prompt, "answer": answer, "capture_uri": "s3://b/capture/x.jsonl"}


@pytest.fixture()
def backend(tmp_path: Path) -> Backend:
    backend = local_backend(CONFIG, tmp_path / "home")
    ensure_bucket(backend, CONFIG.project.bucket)
    return backend


def test_a_correction_is_stored_with_its_provenance_and_replaces_an_earlier_one(backend: Backend) -> None:
    assert list_feedback(backend, CONFIG) == []
    first = record_feedback(backend, CONFIG, _exchange("e1", "How long is the warranty?", "1 year"), "2 years", "ana")
    again = record_feedback(backend, CONFIG, _exchange("e1", "How long is the warranty?", "1 year"), "3 years", "bo",
                            "checked the policy")
    other = record_feedback(backend, CONFIG, _exchange("e1", "Who builds the R2?", "Nobody", index=1), "Acme", "ana")
    stored = list_feedback(backend, CONFIG)
    assert first.id == again.id != other.id
    assert {item.id: item.right_answer for item in stored} == {first.id: "3 years", other.id: "Acme"}
    kept = next(item for item in stored if item.id == first.id)
    assert (kept.wrong_answer, kept.marked_by, kept.comment, kept.event_id) == ("1 year", "bo", "checked the policy", "e1")
    with pytest.raises(ValueError, match="right answer is the captured answer"):
        record_feedback(backend, CONFIG, _exchange("e2", "Q?", "same"), " same ", "ana")
    with pytest.raises(ValueError, match="it is empty"):
        record_feedback(backend, CONFIG, _exchange("e2", "Q?", "x"), "  ", "ana")


def test_the_next_data_version_holds_the_rows_and_prepare_reads_them(backend: Backend, tmp_path: Path) -> None:
    """The second domain (Tidewater Ferries): its export staged, a correction added, the prepare step's output."""
    import prepare

    export = write_ferry_round(1, tmp_path / "ferry")
    staged = stage_directory(backend, export, s3_layout.data_uri(CONFIG))
    assert with_feedback(backend, CONFIG, staged) == staged  # no feedback: the same data version
    prompt = "How early must I check in for the Harbor Line ferry with a car?"
    item = record_feedback(backend, CONFIG, _exchange("e9", prompt, "5 minutes"), "45 minutes before sailing", "ana")
    with_rows = with_feedback(backend, CONFIG, staged)
    assert with_rows != staged and with_feedback(backend, CONFIG, staged) == with_rows  # content-addressed
    folder = download_prefix(backend.client("s3"), with_rows + "/", tmp_path / "staged")
    rows = [json.loads(line) for line in (folder / DATA_FILE).read_text().splitlines()]
    assert rows == [item.data_row()] and rows[0]["captured_answer"] == "5 minutes"
    prepare.prepare(folder, tmp_path / "prepared", validation_fraction=0.0, seed=1)
    examples = [json.loads(line) for path in (tmp_path / "prepared").glob("*/*.jsonl") for line in path.read_text().splitlines()
                if "prompt" in line]
    found = [e for e in examples if e["prompt"] == prompt]
    assert [(e["completion"], e["source"]) for e in found] == [("45 minutes before sailing", f"{DATA_FILE}:1")]


def test_the_feedback_suite_is_staged_beside_the_configured_ones_and_loads(backend: Backend, tmp_path: Path) -> None:
    from common.benchmarks import load_suite

    assert FEEDBACK_SUITE not in stage_benchmarks(backend, CONFIG)
    item = record_feedback(backend, CONFIG, _exchange("e3", "What is the Rover X1?", "A toaster"), "A warehouse robot", "ana")
    staged = stage_benchmarks(backend, CONFIG)
    assert set(staged) == {*CONFIG.evaluation.suites, FEEDBACK_SUITE}
    folder = download_prefix(backend.client("s3"), staged[FEEDBACK_SUITE] + "/", tmp_path / "suite")
    suite = load_suite(folder)
    assert (suite.name, suite.spec.primary_metric, suite.spec.threshold) == (FEEDBACK_SUITE, "token_f1",
                                                                              CONFIG.feedback.threshold)
    assert [(case.id, case.prompt, case.target) for case in suite.cases] == [
        (f"feedback.{item.id}", "What is the Rover X1?", "A warehouse robot")]
