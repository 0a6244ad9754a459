"""Keys spilled by range and decided one small group at a time: the same result as deciding in memory."""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

import prepare
from prepare import dedup, replay, replay_select, scan, spill, units
from prepare.merge import InlinePool, deduplicate
from prepare.spill import KEY_ROW, Bitmap, SpillSource, SpillWriter, partition_totals, plan_groups, read_group
from prepare.split import SplitTally, assign_splits
from prepare.units import COLUMNS, Unit, UnitWriter

WORDS = "robot battery dock floor carpet brush filter wheel motor map room schedule app wifi light red green".split()


@pytest.fixture()
def tiny_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of 4 examples, groups of 1-3 rows, chunks of 5 examples, batches of 3 rows: everything is cut up."""
    monkeypatch.setattr(spill, "RUN_ROWS", 4)
    monkeypatch.setattr(spill, "GROUP_BYTES", 40)
    monkeypatch.setattr(units, "CHUNK_ROWS", 5)
    for module in (scan, replay, replay_select):
        monkeypatch.setattr(module, "BATCH_ROWS", 3)


def test_bitmap_matches_a_boolean_array() -> None:
    rng = np.random.default_rng(0)
    for size in (1, 7, 8, 9, 100):
        flags = rng.random(size) < 0.3
        bits = Bitmap(size)
        bits.set(np.flatnonzero(flags))
        assert bits.count() == flags.sum() and (bits.get(np.arange(size)) == flags).all()
        assert (bits.invert().slice(0, size) == ~flags).all() and bits.invert().count() == (~flags).sum()
        start, stop = sorted(rng.integers(0, size + 1, 2).tolist())
        assert (bits.slice(start, stop) == flags[start:stop]).all()
        grown = bits.resized(size + 13)
        grown.set_range(size + 2, size + 11)
        expected = np.concatenate([flags, np.arange(13) >= 2]) & (np.arange(size + 13) < size + 11)
        assert (grown.slice(0, size + 13) == expected).all() and grown.count() == expected.sum()
        other = Bitmap(size)
        other.set(np.arange(0, size, 2))
        assert ((bits | other).slice(0, size) == (flags | (np.arange(size) % 2 == 0))).all()


def test_groups_return_every_row_once_with_equal_keys_in_input_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    keys = rng.choice(rng.integers(0, 2**64, 40, dtype=np.uint64), 300)  # many repeats, across sources
    sources, base = [], 0
    for number, size in enumerate((120, 0, 95, 85)):
        writer = SpillWriter(tmp_path / f"unit{number}.ids", KEY_ROW)
        for start in range(0, size, 7):  # runs of 7 examples
            rows = np.empty(min(7, size - start), KEY_ROW)
            rows["key"] = keys[base + start:base + start + rows.size]
            rows["index"] = np.arange(start, start + rows.size)
            writer.write_run(rows)
        writer.close()
        sources.append(SpillSource(writer.path, base))
        base += size
    groups = plan_groups(partition_totals(sources), KEY_ROW, budget=20)
    assert len(groups) > 5 and groups[0][0] == 0 and groups[-1][1] == spill.PARTITIONS
    seen = []
    for lo, hi in groups:
        rows, indices = read_group(sources, KEY_ROW, lo, hi)
        assert (keys[indices] == rows["key"]).all()
        for key in np.unique(rows["key"]):
            same = indices[rows["key"] == key]
            assert (np.diff(same) > 0).all()  # equal keys come back in input order
        seen.append(indices)
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(keys.size))


def _texts(count: int, seed: int) -> list[str]:
    """Texts with exact copies and drifting chains of edits (a near-duplicate of a near-duplicate of ...)."""
    rng = random.Random(seed)
    texts: list[str] = []
    for number in range(count):
        roll = rng.random()
        if texts and roll < 0.15:
            texts.append(rng.choice(texts))
        elif texts and roll < 0.65:
            words = texts[-1].split()
            for _ in range(rng.randint(1, 2)):
                words[rng.randrange(len(words))] = rng.choice(WORDS)
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(rng.choices(WORDS, k=rng.randint(12, 24))) + f" item {number}")
    return texts


def _stage(texts: list[str], folder: Path, sizes: list[int]) -> list[Unit]:
    units, start = [], 0
    for number, size in enumerate(sizes):
        chunk = texts[start:start + size]
        writer = UnitWriter(folder / f"{number:06d}")
        for first in range(0, len(chunk), 6):
            batch = chunk[first:first + 6]
            columns = np.zeros(len(batch), COLUMNS)
            columns["id"] = [int(hashlib.sha256(text.encode()).hexdigest()[:16], 16) for text in batch]
            digests = np.array([np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], np.uint64) for t in batch])
            writer.add([json.dumps({"text": text}) + "\n" for text in batch], columns, digests,
                       dedup.signatures(batch))
        units.append(Unit(writer.unit.stage, start, writer.close()))
        start += size
    return units


@pytest.mark.parametrize("threshold, group_bytes", [(0.5, 40), (0.85, 40), (0.85, 512)])
def test_partitioned_deduplication_equals_the_in_memory_result(tmp_path: Path, tiny_budgets: None,
                                                               monkeypatch: pytest.MonkeyPatch, threshold: float,
                                                               group_bytes: int) -> None:
    """A budget of 5 pairs: ranges of 1 example (pairs decided by earlier ranges only); of 64 pairs: ranges of 8
    examples, pairs inside a range too."""
    monkeypatch.setattr(spill, "GROUP_BYTES", group_bytes)
    texts = _texts(230, seed=int(threshold * 100))
    units = _stage(texts, tmp_path, [50, 0, 97, 83])
    found = deduplicate(units, threshold, InlinePool(), tmp_path)

    ids = np.array([int(hashlib.sha256(text.encode()).hexdigest()[:16], 16) for text in texts], np.uint64)
    signature = dedup.signatures(texts)
    unique = dedup.first_occurrences(ids)
    pairs = dedup.candidate_pairs(list(dedup.band_keys(signature)), unique)
    similar = dedup.similarity(signature[pairs[:, 0]], signature[pairs[:, 1]])
    near = dedup.near_duplicates(pairs, similar, threshold, len(texts))
    close_to_any = np.zeros(len(texts), bool)
    close_to_any[pairs[similar >= threshold, 1]] = True
    assert (close_to_any != near).any()  # some example is close only to near-duplicates: it is kept
    assert (found.exact, found.near) == (int((~unique).sum()), int((unique & near).sum()))
    assert found.near > 10 and found.exact > 10
    assert (found.kept.slice(0, len(texts)) == (unique & ~near)).all()


def test_split_tally_streams_the_fixes_assign_splits_makes() -> None:
    rng = np.random.default_rng(2)
    for size, validation, test in [(2, 0.01, 0.0), (3, 0.01, 0.98), (50, 0.001, 0.0), (40, 0.2, 0.79), (200, 0.1, 0.1)]:
        scores = rng.random(size)
        expected = assign_splits(scores, validation, test)
        codes = np.full(size, 0, np.uint8)
        codes[scores < validation + test] = 2
        codes[scores < validation] = 1
        tally = SplitTally()
        for start in range(0, size, 7):
            part = SplitTally()
            part.add(scores[start:start + 7], codes[start:start + 7], np.arange(start, min(start + 7, size)))
            tally.merge(part)
        for index, code in tally.fixes().items():
            codes[index] = code
        assert (codes == expected).all()


def _outputs(out: Path) -> dict[str, bytes]:
    files = {str(path.relative_to(out)): path.read_bytes() for path in out.rglob("*")
             if path.is_file() and path.suffix != ".npz"}
    with np.load(out / "train" / "examples.index.npz") as index:
        files["index"] = index["ids"].tobytes() + index["prompt_keys"].tobytes()
    return files


def test_tiny_budgets_prepare_the_same_data(sample_round_dirs: dict[int, Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Round 2 replaying round 1, with every budget tiny: byte for byte what the default budgets give."""
    for name in ("default", "tiny"):
        if name == "tiny":
            for module, budget, value in [(spill, "RUN_ROWS", 4), (spill, "GROUP_BYTES", 40),
                                          (units, "CHUNK_ROWS", 5), (scan, "BATCH_ROWS", 3),
                                          (replay, "BATCH_ROWS", 3), (replay_select, "BATCH_ROWS", 3)]:
                monkeypatch.setattr(module, budget, value)
        prepare.prepare(sample_round_dirs[1], tmp_path / name / "v1")
        prepare.prepare(sample_round_dirs[2], tmp_path / name / "v2", tmp_path / name / "v1" / "train",
                        replay_fraction=0.5, test_fraction=0.1, near_duplicate_threshold=0.6)
    for version in ("v1", "v2"):
        assert _outputs(tmp_path / "tiny" / version) == _outputs(tmp_path / "default" / version)
    report = json.loads((tmp_path / "tiny" / "v2" / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["replay"]["superseded"] > 0 and report["comparison"]["examples"]["changed"] > 0
    assert report["duplicates"]["near"] > 0 and report["splits"]["test"] > 0


def _replay_record(number: int, stratum: str, id_: str | None = None, source: bool = True) -> dict:
    record = {"prompt": f"How do I use feature {number} of the {stratum.split('.')[0]}?",
              "completion": f"Open the app and pick feature {number}."}
    if id_ is not None:
        record["id"] = id_
    if source:
        record["source"] = f"{stratum}:{number}"
    return record


@pytest.mark.parametrize("coarse_scores", [False, True])
def test_streamed_replay_equals_the_in_memory_rules(tmp_path: Path, tiny_budgets: None,
                                                    monkeypatch: pytest.MonkeyPatch, coarse_scores: bool) -> None:
    """First of each id, a share per stratum by (score, id), superseded by new prompts or ids, by id text.

    Coarse scores (3 values) make ties everywhere: the id text breaks them."""
    if coarse_scores:
        monkeypatch.setattr(replay, "_score_bits", lambda example_id, seed: len(example_id) % 3 * 2**50)
    strata = ["faq.jsonl", "chats.jsonl", "docs/guide.md"]
    first = [_replay_record(number, strata[number % 3]) for number in range(40)]
    first[5]["id"], first[9]["id"], first[13]["id"] = "custom-7", "ABCDEF0123456789", "zz-top"  # not canonical
    first.append(dict(first[3]))  # the same id again: read once
    second = [_replay_record(number, strata[number % 3], source=False) for number in range(40, 52)]
    second.append(dict(first[7]))  # an id from the first file: read once
    replay_dir = tmp_path / "replay"
    (replay_dir / "v1").mkdir(parents=True)
    (replay_dir / "v1" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first) + "{broken\n",
                                               encoding="utf-8")
    (replay_dir / "v1" / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in second), encoding="utf-8")
    new = tmp_path / "new"
    new.mkdir()
    asked = [{"prompt": first[number]["prompt"], "completion": "A new answer."} for number in (0, 1, 2, 5)]
    again = [{"prompt": first[number]["prompt"], "completion": first[number]["completion"]} for number in (20, 21)]
    fresh = [{"prompt": f"Fresh question {number}?", "completion": f"Fresh answer {number}."} for number in range(40)]
    (new / "new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in asked + again + fresh), encoding="utf-8")

    report = prepare.prepare(new, tmp_path / "out", replay_dir, replay_fraction=0.6, min_examples=1)

    from prepare.readers import discover
    from prepare.records import prompt_key
    from prepare.replay import id_key, read_replay_file, sample_replay

    examples = [e for file in discover([replay_dir]) for e in read_replay_file(file)[0]]
    available = list({e.id: e for e in reversed(examples)}.values())[::-1]  # first of each id, in order
    sampled = sample_replay(available, 0.6, seed=42)
    lines = [json.loads(line) for name in ("train", "validation", "test")
             for line in (tmp_path / "out" / name / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    new_kept = [e for e in lines if not e["source"].startswith("replay:")]
    new_prompts = {int(prompt_key(e["prompt"]), 16) for e in new_kept}
    new_ids = {int(e["id"], 16) for e in new_kept}
    used = [e for e in sampled if int(prompt_key(e.prompt), 16) not in new_prompts and id_key(e.id) not in new_ids]
    assert len(used) < len(sampled) < len(available) < len(examples)
    assert {"custom-7", "ABCDEF0123456789", "zz-top"} & {e.id for e in used}
    train = (tmp_path / "out" / "train" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    assert train[len(train) - len(used):] == [e.line()[0] for e in used]
    assert report["replay"] == {"available": len(available), "sampled": len(sampled),
                                "superseded": len(sampled) - len(used), "quarantined": 1, "used": len(used),
                                "fraction": 0.6}


@pytest.mark.parametrize("document", [
    '[{"q": "a", "a": "b"}, {"q": "c\\nd", "a": "é"},\n  7, [1, 2], null, 123456789, {"x": 1.5e3}]',
    '\ufeff{"data":\n [\n{"question": "Q?", "answer": "A."},\r\n  {"question": "R?", "answer": "'
    + "x" * 50 + '"}\n]}\n',
    '[]', '  {"rows": []}  ', '[12345678901234567890, "' + "é" * 40 + '", true]',
    # not streamed (read whole, as before): other shapes and broken documents
    '{"a": {"q": "x", "a": "y"}, "b": {"q": "z", "a": "w"}}', '{"data": [1], "data": [{"q": "x"}]}',
    '{"prompt": "p", "completion": "c"}', '{"messages": [{"role": "user", "content": "x"}]}', '7', '',
    '[{"q": "a"},]', '[{"q": "a"} {"q": "b"}]', '[{"q": "a"}] x', '{"data": [{"q": 1}]', '[{"q": "\\ud800"}]',
])
def test_json_documents_stream_with_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  document: str) -> None:
    """Read in 7-byte chunks (values cut anywhere) the rows are those of the whole document."""
    from prepare import readers

    path = tmp_path / "doc.json"
    path.write_text(document, encoding="utf-8")
    with path.open("rb") as handle:
        whole = list(readers._whole_json_rows(handle))
    monkeypatch.setattr(readers, "JSON_CHUNK_BYTES", 7)
    streamed = list(readers.json_rows(lambda: path.open("rb")))

    def comparable(rows: list) -> list:
        return [(line, (row.reason, row.detail) if isinstance(row, readers.RowError) else row, raw)
                for line, row, raw in rows]

    assert comparable(streamed) == comparable(whole)


def test_json_arrays_are_read_an_element_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prepare import readers

    path = tmp_path / "big.json"
    path.write_text("[" + ",\n".join(json.dumps({"question": f"Q{i}?", "answer": "A" * 200}) for i in range(2000))
                    + "]", encoding="utf-8")
    monkeypatch.setattr(readers, "JSON_CHUNK_BYTES", 4096)
    longest = 0
    original = readers._JsonText._fill

    def fill(self: readers._JsonText) -> bool:
        nonlocal longest
        more = original(self)
        longest = max(longest, len(self.text))
        return more

    monkeypatch.setattr(readers._JsonText, "_fill", fill)
    rows = list(readers.json_rows(lambda: path.open("rb")))
    assert len(rows) == 2000 and rows[1999][0] == 2000 and rows[5][1] == {"question": "Q5?", "answer": "A" * 200}
    assert longest < 2 * 4096 and path.stat().st_size > 100 * 4096  # never more than a chunk and a record
