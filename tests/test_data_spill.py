"""Keys spilled by range and decided one small group at a time: the same result as deciding in memory."""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

import prepare
from common import data_dedup, data_scan, data_spill, data_units
from common.data_merge import InlinePool, deduplicate
from common.data_spill import KEY_ROW, Bitmap, SpillSource, SpillWriter, partition_totals, plan_groups, read_group
from common.data_split import SplitTally, assign_splits
from common.data_units import COLUMNS, Unit, UnitWriter

WORDS = "robot battery dock floor carpet brush filter wheel motor map room schedule app wifi light red green".split()


@pytest.fixture()
def tiny_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of 4 examples, groups of 3 rows, chunks of 5 examples, batches of 3 rows: everything is cut up."""
    monkeypatch.setattr(data_spill, "RUN_ROWS", 4)
    monkeypatch.setattr(data_spill, "GROUP_ROWS", 3)
    monkeypatch.setattr(data_units, "CHUNK_ROWS", 5)
    monkeypatch.setattr(data_scan, "BATCH_ROWS", 3)


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
            rows["key"], rows["index"] = keys[base + start:base + start + rows.size], np.arange(start, start + rows.size)
            writer.write_run(rows)
        writer.close()
        sources.append(SpillSource(writer.path, base))
        base += size
    groups = plan_groups(partition_totals(sources), budget=20)
    assert len(groups) > 5 and groups[0][0] == 0 and groups[-1][1] == data_spill.PARTITIONS
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
                       data_dedup.signatures(batch))
        units.append(Unit(writer.unit.stage, start, writer.close()))
        start += size
    return units


@pytest.mark.parametrize("threshold, group_rows", [(0.5, 3), (0.85, 3), (0.85, 64)])
def test_partitioned_deduplication_equals_the_in_memory_result(tmp_path: Path, tiny_budgets: None,
                                                               monkeypatch: pytest.MonkeyPatch, threshold: float,
                                                               group_rows: int) -> None:
    """Groups of 3 rows decide each pair's later member alone; of 64, pairs inside a range of 8 examples too."""
    monkeypatch.setattr(data_spill, "GROUP_ROWS", group_rows)
    texts = _texts(230, seed=int(threshold * 100))
    units = _stage(texts, tmp_path, [50, 0, 97, 83])
    found = deduplicate(units, threshold, InlinePool(), tmp_path)

    ids = np.array([int(hashlib.sha256(text.encode()).hexdigest()[:16], 16) for text in texts], np.uint64)
    signature = data_dedup.signatures(texts)
    unique = data_dedup.first_occurrences(ids)
    pairs = data_dedup.candidate_pairs(list(data_dedup.band_keys(signature)), unique)
    similar = data_dedup.similarity(signature[pairs[:, 0]], signature[pairs[:, 1]])
    near = data_dedup.near_duplicates(pairs, similar, threshold, len(texts))
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
            for module, budget, value in [(data_spill, "RUN_ROWS", 4), (data_spill, "GROUP_ROWS", 3),
                                          (data_units, "CHUNK_ROWS", 5), (data_scan, "BATCH_ROWS", 3)]:
                monkeypatch.setattr(module, budget, value)
        prepare.prepare(sample_round_dirs[1], tmp_path / name / "v1")
        prepare.prepare(sample_round_dirs[2], tmp_path / name / "v2", tmp_path / name / "v1" / "train",
                        replay_fraction=0.5, test_fraction=0.1, near_duplicate_threshold=0.6)
    for version in ("v1", "v2"):
        assert _outputs(tmp_path / "tiny" / version) == _outputs(tmp_path / "default" / version)
    report = json.loads((tmp_path / "tiny" / "v2" / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["replay"]["superseded"] > 0 and report["comparison"]["examples"]["changed"] > 0
    assert report["duplicates"]["near"] > 0 and report["splits"]["test"] > 0
