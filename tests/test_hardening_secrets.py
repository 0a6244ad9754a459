"""Issue 14, item 6: secrets without a fixed shape are caught (detect-secrets' detectors), never reach a split or
the quarantine in clear, and ordinary FAQ text of both companies is not taken for one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import ferry_company
import prepare
from pipelines.demo.sample_data import ROUNDS as DEMO_ROUNDS
from pipelines.demo.sample_data import write_round as write_demo_round
from prepare import pii

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PASSWORD = "Hunter2-Sup3r-S3cret!"


@pytest.mark.parametrize(("text", "kind", "secret"), [
    (f"Our backup key is {AWS_SECRET} (do not share).", "high_entropy", AWS_SECRET),
    (f"password: {PASSWORD}", "password", PASSWORD),
    (f"The admin password is {PASSWORD}", "password", PASSWORD),
    ("api_key = 'a8f5f167f44f4964e6c998dee827110c'", "secret", "a8f5f167f44f4964e6c998dee827110c"),
    ("Twilio: AC0123456789abcdef0123456789abcdef", "provider_key", "AC0123456789abcdef0123456789abcdef"),
    ("stripe rk_live_0123456789abcdefABCDEFGH used", "api_key", "rk_live_0123456789abcdefABCDEFGH"),
    ("Slack: https://hooks.slack.com/services/T0AB12CD3/B0AB12CD3/abcDEF123ghiJKL456mnoPQR", "provider_key",
     "abcDEF123ghiJKL456mnoPQR"),
    ("db at https://admin:Pa55w0rd@db.internal/x", "email", "Pa55w0rd"),  # the overlapping finding wins
])
def test_secrets_are_found_and_masked(text: str, kind: str, secret: str) -> None:
    found = pii.find(text)
    assert kind in [item[0] for item in found], found
    redacted, kinds = pii.redact(text)
    assert secret not in redacted and kinds


@pytest.mark.parametrize("text", [
    "Your password is case-sensitive.",
    "To change your password: go to Settings > Security.",
    "The Wi-Fi password is printed on your boarding pass.",
    "The key card opens cabin 12; passengers are welcome on the upper deck.",
    "Use the code SUMMER2024 at checkout for 10% off.",
    "Your booking reference looks like TWF-7Q2K9X; keep it with your ticket.",
    "Reset it at https://example.com/help/reset-your-account-password-in-three-steps",
    "Secret: there is none, the fare is $18 one way.",
])
def test_ordinary_text_is_not_a_secret(text: str) -> None:
    assert pii.redact(text) == (text, {})


def _write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


FAQ = [{"prompt": f"How long does crossing {n} take?", "completion": f"Crossing {n} takes {20 + n} minutes."}
       for n in range(30)]
LEAKS = [{"prompt": "What are the backup credentials?", "completion": f"The key is {AWS_SECRET}."},
         {"prompt": "How do I log in to the kiosk?", "completion": f"Use the admin account, password: {PASSWORD}"}]


def test_blocked_rows_never_carry_the_secret_in_clear(tmp_path: Path) -> None:
    _write(tmp_path / "data" / "faq.jsonl", FAQ + LEAKS)
    report = prepare.prepare(tmp_path / "data", tmp_path / "out", pii="block", min_examples=1, workers=1)
    quarantine = (tmp_path / "out" / "report" / "quarantine.jsonl").read_text()
    rows = [json.loads(line) for line in quarantine.splitlines()]
    assert [row["reason"] for row in rows] == ["pii", "pii"], rows
    assert AWS_SECRET not in quarantine and PASSWORD not in quarantine
    assert "[HIGH_ENTROPY]" in rows[0]["raw"] and "[PASSWORD]" in rows[1]["raw"]
    assert report["pii"]["found"] == {"high_entropy": 1, "password": 1}
    for split in ("train", "validation", "test"):
        for path in (tmp_path / "out" / split).glob("*.jsonl"):
            assert AWS_SECRET not in path.read_text() and PASSWORD not in path.read_text()


def test_redacted_rows_train_on_the_masked_text(tmp_path: Path) -> None:
    _write(tmp_path / "data" / "faq.jsonl", FAQ + LEAKS)
    prepare.prepare(tmp_path / "data", tmp_path / "out", pii="redact", min_examples=1, workers=1)
    text = "".join(path.read_text() for split in ("train", "validation", "test")
                   for path in (tmp_path / "out" / split).glob("*.jsonl"))
    assert AWS_SECRET not in text and PASSWORD not in text
    assert "The key is [HIGH_ENTROPY]." in text and "password: [PASSWORD]" in text


def test_no_secret_in_either_companys_data(tmp_path: Path) -> None:
    """The demo's and Tidewater Ferries' rounds: PII they hold on purpose (emails, phones) is found; not one
    secret kind."""
    secret_kinds = {"provider_key", "password", "secret", "high_entropy"}
    for name, write, rounds in (("demo", write_demo_round, DEMO_ROUNDS),
                                ("ferry", ferry_company.write_round, ferry_company.ROUNDS)):
        for round_no in rounds:
            folder = tmp_path / f"{name}-{round_no}"
            write(round_no, folder)
            report = prepare.prepare(folder, tmp_path / f"out-{name}-{round_no}", pii="block", min_examples=1,
                                     max_reject_rate=1.0, workers=1)
            assert not secret_kinds & set(report["pii"]["found"]), (name, round_no, report["pii"])
