"""PII scanning, near-duplicate detection, token lengths with a real tokenizer and chat template, splits."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prepare import dedup, pii
from prepare.split import TEST, TRAIN, VALIDATION, assign_splits, split_score, split_scores
from prepare.tokens import load_counter

import prepare


@pytest.mark.parametrize("text, redacted, kinds", [
    ("Mail jane.doe+x@example.co.uk today", "Mail [EMAIL] today", {"email": 1}),
    ("Call 555-123-4567 or +44 20 7946 0958.", "Call [PHONE] or [PHONE].", {"phone": 2}),
    ("Call 1-800-555-0100 now", "Call [PHONE] now", {"phone": 1}),
    ("Card 4111 1111 1111 1111, exp 12/27", "Card [CARD], exp 12/27", {"card": 1}),
    ("Amex 378282246310005.", "Amex [CARD].", {"card": 1}),
    ("Key AKIAIOSFODNN7EXAMPLE in the log", "Key [AWS_ACCESS_KEY] in the log", {"aws_access_key": 1}),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "[AWS_SECRET_KEY]", {"aws_secret_key": 1}),
    ("Authorization: Bearer abc.DEF-123_456~789/xyz", "Authorization: [BEARER_TOKEN]", {"bearer_token": 1}),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA\n-----END OPENSSH PRIVATE KEY-----\nbye", "[PRIVATE_KEY]\nbye",
     {"private_key": 1}),
    ("token ghp_" + "a1B2" * 9, "token [GITHUB_TOKEN]", {"github_token": 1}),
    ("slack xoxb-1234567890-abcdefghij", "slack [SLACK_TOKEN]", {"slack_token": 1}),
    ("use sk-proj-" + "Ab3" * 10, "use [API_KEY]", {"api_key": 1}),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpM", "jwt [JWT]", {"jwt": 1}),
])
def test_pii_kinds_are_found_and_redacted(text: str, redacted: str, kinds: dict[str, int]) -> None:
    assert pii.may_contain([text]) == [True]
    result, found = pii.redact(text)
    assert (result, dict(found)) == (redacted, kinds)


@pytest.mark.parametrize("text", [
    "Price $1,299.00 since 2024-05-01, order 1234567, version 10.2.3",
    "Card-like 4111 1111 1111 1112 fails the Luhn check",
    "The Sweepy S2 weighs 3 kg and costs $399",
])
def test_clean_text_is_left_alone(text: str) -> None:
    assert pii.redact(text) == (text, {})


def test_allow_list_keeps_public_contacts() -> None:
    allow = frozenset({"@acme.com", "1-800-555-0199"})
    text = "Write help@acme.com or sales@ACME.com, call 1-800-555-0199; not bob@gmail.com or 555-123-4567"
    result, found = pii.redact(text, allow)
    assert result == "Write help@acme.com or sales@ACME.com, call 1-800-555-0199; not [EMAIL] or [PHONE]"
    assert dict(found) == {"email": 1, "phone": 1}
    assert pii.luhn_valid("79927398713") and not pii.luhn_valid("79927398710")


def test_minhash_estimates_jaccard_and_lsh_finds_near_duplicates() -> None:
    base = ("the robot vacuum cleans hard floors and carpets and returns to its dock when the battery runs low "
            "so that it can charge before it finishes the rest of the rooms on the map").split()
    edited = base.copy()
    edited[5] = "rugs"
    other = ("the warranty covers parts and labour for two years and can be extended to five years for a fee "
             "paid within thirty days of purchase at any store").split()
    texts = [" ".join(base), " ".join(edited), " ".join(other), " ".join(base[:8])]
    signature = dedup.signatures(texts)
    assert signature.shape == (4, dedup.NUM_PERM) and signature.dtype == np.uint32
    assert (dedup.signatures(texts) == signature).all()  # deterministic
    near = dedup.similarity(signature[[0]], signature[[1]])[0]
    far = dedup.similarity(signature[[0]], signature[[2]])[0]
    assert near >= 0.7 and far <= 0.2
    pairs = dedup.candidate_pairs(list(dedup.band_keys(signature)), np.ones(4, bool))
    assert [0, 1] in pairs.tolist()
    duplicate = dedup.near_duplicates(pairs, dedup.similarity(signature[pairs[:, 0]], signature[pairs[:, 1]]),
                                           0.7, 4)
    assert duplicate.tolist() == [False, True, False, False]


def test_near_duplicates_are_removed_but_facts_that_differ_are_kept(tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    long_answer = ("Hold the power button for ten seconds until the light turns orange, then release it and wait "
                   "for the robot to restart; your maps and schedules are kept, and the Wi-Fi settings are reset "
                   "so you will need to connect it to the app again.")
    records = [{"question": f"What does the Acme X{n} cost?", "answer": f"${n}99"} for n in range(1, 40)]
    records += [{"question": "How do I reset my robot?", "answer": long_answer},
                {"question": "How do I reset my robot?", "answer": long_answer.replace("ten seconds", "10 seconds")},
                {"question": "HOW DO I RESET MY ROBOT?", "answer": long_answer.upper()}]
    (data / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    report = prepare.prepare(data, tmp_path / "out", min_examples=1)
    assert report["duplicates"] == {"exact": 0, "near": 2}
    assert report["rows"]["kept"] == 40
    kept = [json.loads(line) for name in ("train", "validation")
            for line in (tmp_path / "out" / name / f"{name}.jsonl").read_text().splitlines()]
    assert sum(e["prompt"] == "How do I reset my robot?" for e in kept) == 1
    assert next(e for e in kept if e["prompt"] == "How do I reset my robot?")["completion"] == long_answer
    strict = prepare.prepare(data, tmp_path / "strict", min_examples=1, near_duplicate_threshold=1.0)
    assert strict["duplicates"]["near"] == 1  # only the upper-cased copy is identical once lower-cased


def test_exact_duplicates_keep_the_first_copy(tmp_path: Path) -> None:
    """The copy kept is the first in input order (files by path, then lines): its source says so."""
    keys = np.array([7, 3, 7, 9, 3, 7], np.uint64)
    assert dedup.first_occurrences(keys).tolist() == [True, True, False, True, False, False]
    assert sorted(dedup.later_occurrences(keys, np.arange(100, 106)).tolist()) == [102, 104, 105]

    data = tmp_path / "in"
    data.mkdir()
    records = [{"question": f"What does the Acme Z{n} weigh?", "answer": f"{n * 3} kg"} for n in range(1, 30)]
    copy = {"question": "Does the dock need Wi-Fi?", "answer": "No, it charges without a network."}
    lines = [records[0], records[1], copy, *records[2:20], copy, records[20], copy]  # copy at lines 3, 23 and 25
    (data / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    (data / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [copy, *records[21:]]), encoding="utf-8")
    (data / "0-first.csv").write_text("question,answer\nWhat does the Acme Z5 weigh?,15 kg\n", encoding="utf-8")
    report = prepare.prepare(data, tmp_path / "out", min_examples=1)
    assert report["duplicates"] == {"exact": 4, "near": 0} and report["rows"]["kept"] == len(records) + 1
    kept = [json.loads(line) for name in ("train", "validation")
            for line in (tmp_path / "out" / name / f"{name}.jsonl").read_text().splitlines()]
    sources = {e["prompt"]: e["source"] for e in kept}
    assert sources["Does the dock need Wi-Fi?"] == "a.jsonl:3"
    assert sources["What does the Acme Z5 weigh?"] == "0-first.csv:2"  # the earlier file wins over a.jsonl:7
    assert sources["What does the Acme Z1 weigh?"] == "a.jsonl:1"


def test_dedup_building_blocks_on_edge_cases() -> None:
    """Empty inputs keep their shapes and types; a pair found in several bands is listed once; close pairs come
    sorted by (later, earlier)."""
    empty = dedup.signatures([])
    assert empty.shape == (0, dedup.NUM_PERM) and empty.dtype == np.uint32
    no_pairs = dedup.candidate_pairs([np.arange(4, dtype=np.uint64)] * dedup.BANDS, np.ones(4, bool))
    assert no_pairs.shape == (0, 2) and no_pairs.dtype == np.int64
    unique = dedup.repeated(np.array([4, 1, 3], np.uint64))
    assert unique.dtype == bool and unique.tolist() == [False, False, False]
    assert dedup.repeated(np.array([4, 1, 4, 2, 1], np.uint64)).tolist() == [True, True, True, False, True]

    same = [np.array([7, 7, 9, 7], np.uint64)] * dedup.BANDS  # rows 0, 1 and 3 share a bucket in every band
    assert dedup.candidate_pairs(same, np.ones(4, bool)).tolist() == [[0, 1], [0, 3]]
    assert dedup.candidate_pairs(same, np.array([False, True, True, True])).tolist() == [[1, 3]]
    first, later = dedup.bucket_pairs(np.array([7, 7, 9, 7], np.uint64))
    assert sorted(zip(first.tolist(), later.tolist())) == [(0, 1), (0, 3)]

    pairs = np.array([[2, 5], [0, 5], [1, 3], [0, 3], [4, 6]], np.int64)
    signature = np.zeros((7, dedup.NUM_PERM), np.uint32)
    assert dedup.close_pairs(pairs, signature[pairs[:, 0]], signature[pairs[:, 1]], 0.8).tolist() == \
        [[0, 3], [1, 3], [0, 5], [2, 5], [4, 6]]
    flags = np.zeros(4, bool)  # examples 3..6; pairs with an earlier member before 3 are the caller's
    dedup.mark_near_duplicates(np.array([[3, 4], [4, 5], [5, 6]]), flags, 3)
    assert flags.tolist() == [False, True, False, True]  # 5's only close earlier member is a duplicate: kept


def test_signatures_are_pinned_across_versions() -> None:
    """Signatures must agree across runs, machines and versions (spilled and replayed data is compared with
    them): the hash is splitmix64's finalizer (its reference value for 0), the MinHash and band keys fixed."""
    assert dedup.mix64(np.array([0, 1, 2**63], np.uint64)).tolist() == [
        0xE220A8397B1DCDAF, 10451216379200822465, 5196802822362493915]
    signature = dedup.signatures(["The robot charges in two hours.", "é ünïcode wörds here"])  # ASCII and not
    assert signature[:, :4].tolist() == [[1798304028, 869111553, 1942131157, 85947825],
                                         [679408586, 971830431, 754176157, 1283635690]]
    assert int(signature.astype(np.uint64).sum()) == 46848738620
    assert dedup.band_keys(signature)[:, 0].tolist() == [
        12267680214976715661, 14353817854732306900, 1901917569785252881, 1009721867018426380,
        12858560783253547203, 2129037899863176940, 613297959388789358, 4424518457481127597]
    assert dedup.sketches(signature).tolist() == [6596973502281050708, 11620853141240390558]
    other_order = dedup.signatures(["é ünïcode wörds here", "A b robot charges"])  # multi-byte first; a 1-letter word
    assert other_order[:, :3].tolist() == [[679408586, 971830431, 754176157], [972255575, 1774464628, 821917573]]
    assert int(other_order.astype(np.uint64).sum()) == 52960456638
    assert (other_order[0] == signature[1]).all()  # a text's signature does not depend on its neighbours
    texts = ["A b robot charges", "日本語のテキストです とても長い文章 words", "plain ascii words here"]
    together = dedup.signatures(texts)
    for index, text in enumerate(texts):
        assert (together[index] == dedup.signatures([text])[0]).all()
        assert (together[index] == dedup.signatures(["lead", text])[1]).all()
    with pytest.raises(ValueError, match=r"^every text needs at least one word to be shingled$"):
        dedup.signatures(["fine words", "   "])


def test_sketch_prefilter_is_sound_and_rejects_far_pairs() -> None:
    """may_be_close never drops a pair close enough, and drops pairs whose low bits already differ too often."""
    rng = np.random.default_rng(3)
    left = rng.integers(0, 2**32, size=(400, dedup.NUM_PERM), dtype=np.uint32)
    right = left.copy()
    for row, changed in enumerate(rng.integers(0, dedup.NUM_PERM + 1, size=400)):
        right[row, :changed] = rng.integers(0, 2**32, size=changed, dtype=np.uint32)
    for threshold in (0.5, 0.8, 0.9):
        close = dedup.similarity(left, right) >= threshold
        kept = dedup.may_be_close(dedup.sketches(left), dedup.sketches(right), threshold)
        assert kept[close].all() and (~kept[~close]).sum() > 0.5 * (~close).sum()
    zeros = np.zeros((1, dedup.NUM_PERM), np.uint32)
    for low_bits in (1, 2, 3):  # values that differ only in one or both of the two lowest bits
        ten_off = zeros.copy()
        ten_off[0, :10] = low_bits
        assert dedup.sketches(ten_off)[0] == sum(low_bits << (2 * k) for k in range(10))
        assert not dedup.may_be_close(dedup.sketches(zeros), dedup.sketches(ten_off), 0.8)[0]  # similarity 22/32
        assert dedup.may_be_close(dedup.sketches(zeros), dedup.sketches(ten_off), 0.65)[0]
    high_only = zeros + 4  # differs above the two lowest bits: the sketch cannot tell
    assert dedup.sketches(high_only)[0] == 0 and dedup.may_be_close(dedup.sketches(zeros), dedup.sketches(high_only), 1.0)[0]


def _tokenizer_dir(folder: Path, chat_template: str | None) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["the robot cleans floors", "what is the price", "hello there"], trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    folder.mkdir(parents=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"bos_token": "<s>", "eos_token": "</s>", **({"chat_template": chat_template} if chat_template else {})}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_token_lengths_follow_the_prompt_template_or_the_chat_template(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    plain = load_counter(_tokenizer_dir(tmp_path / "plain", None))
    tokenizer = Tokenizer.from_file(str(tmp_path / "plain" / "tokenizer.json"))
    messages = [{"role": "user", "content": "what is the price"}, {"role": "assistant", "content": "the robot"}]
    expected = (len(tokenizer.encode("### Question:\nwhat is the price\n### Answer:\n").ids)
                + len(tokenizer.encode("the robot", add_special_tokens=False).ids) + 1)
    assert plain.count(messages, "what is the price", "the robot") == expected
    assert plain.surely_fits(messages, "what is the price", "the robot", 200)
    assert not plain.surely_fits(messages, "what is the price", "the robot", expected)

    template = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}"
                "{% endfor %}")
    chat = load_counter(_tokenizer_dir(tmp_path / "chat", template))
    assert "chat template" in chat.description
    rendered = "<s><|user|>what is the price</s><|assistant|>the robot</s>"
    assert chat.count(messages, "", "") == len(tokenizer.encode(rendered, add_special_tokens=False).ids)
    assert load_counter(tmp_path / "nowhere").exact is False


def test_over_long_examples_are_measured_with_the_tokenizer(tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    records = [{"question": "what is the price", "answer": answer} for answer in ("the robot", "hello there",
                                                                                  "the robot " * 40)]
    (data / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    report = prepare.prepare(data, tmp_path / "out", tokenizer_dir=_tokenizer_dir(tmp_path / "tok", None),
                             max_tokens=60, min_examples=1, max_reject_rate=1)
    quarantine = [json.loads(line) for line in (tmp_path / "out" / "report" / "quarantine.jsonl").read_text()
                  .splitlines()]
    assert [(row["line"], row["reason"]) for row in quarantine] == [(3, "too_long")]
    assert quarantine[0]["detail"] == "113 tokens, over the limit of 60 (the base model's tokenizer.json)"
    assert report["tokens"]["counted"] >= 1 and report["rows"]["kept"] == 2


def test_splits_are_hash_based_and_never_empty() -> None:
    keys = np.arange(1, 20001, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    scores = split_scores(keys, seed=42)
    assert ((scores >= 0) & (scores < 1)).all() and abs(scores.mean() - 0.5) < 0.01
    codes = assign_splits(scores, 0.1, 0.2)
    shares = [float((codes == code).mean()) for code in (TRAIN, VALIDATION, TEST)]
    assert shares == pytest.approx([0.7, 0.1, 0.2], abs=0.01)
    assert split_score("00000000000000ff", 42) == split_score("00000000000000ff", 42) != split_score("00000000000000ff", 7)
    two = assign_splits(np.array([0.5, 0.7]), 0.1, 0.0)
    assert sorted(two.tolist()) == [TRAIN, VALIDATION]


# ---------------------------------------------------------------- junk answers: one reason per class

JUNK_FACTS = [{"question": f"How long is the crossing to island {number}?",
               "answer": f"The crossing to island {number} takes {20 + number} minutes."} for number in range(40)]


@pytest.mark.parametrize("reason, answers", [
    ("placeholder_answer", ["N/A", "n/a", "none", "null", "TBD", "TODO", "???", "-", "...", " N/A. ", "To be confirmed"]),
    ("lorem_ipsum", ["Lorem ipsum dolor sit amet.", "See: lorem  ipsum, consectetur adipiscing elit"]),
    ("answer_equals_prompt", ["__question__", "__QUESTION__.", "  __question__  "]),
    ("repeated_token", ["yes yes yes yes", "aaaaaaa", "Yes, yes, yes.", "test test test"]),
    ("no_letters_or_digits", ["!!!", "*** ***", "?!", "—— ——", "¿¡"]),
], ids=lambda value: value if isinstance(value, str) else "")
def test_junk_answers_are_quarantined_with_their_class(tmp_path: Path, reason: str, answers: list[str]) -> None:
    data = tmp_path / "in"
    data.mkdir()
    junk = [{"question": f"What is the timetable for route {number}?", "answer": answer}
            for number, answer in enumerate(answers)]
    for record in junk:
        record["answer"] = record["answer"].replace("__question__", record["question"].rstrip("?")) \
            .replace("__QUESTION__", record["question"].upper().rstrip("?"))
    (data / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in JUNK_FACTS + junk), encoding="utf-8")
    report = prepare.prepare(data, tmp_path / "out", min_examples=1)
    quarantine = [json.loads(line) for line in (tmp_path / "out" / "report" / "quarantine.jsonl").read_text()
                  .splitlines()]
    assert report["quarantine_reasons"] == {reason: len(answers)}
    assert [(row["line"], row["reason"]) for row in quarantine] == [(41 + n, reason) for n in range(len(answers))]
    assert report["rows"] == {"input": 40 + len(answers), "kept": 40, "duplicates": 0, "quarantined": len(answers)}


def test_short_real_answers_are_kept(tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    answers = ["Yes.", "No", "42", "$549", "No, it is not", "None, returns are free", "0000", "OK", "3-5 days",
               "N/A means not applicable", "Yes, yes: twice a day"]
    records = JUNK_FACTS + [{"question": f"Question {number}?", "answer": answer} for number, answer in enumerate(answers)]
    (data / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    report = prepare.prepare(data, tmp_path / "out", min_examples=1)
    assert report["rows"]["quarantined"] == 0 and report["rows"]["kept"] == len(records)
