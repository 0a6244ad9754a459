"""The prepare step's run and command line (entry script: steps/prepare.py, which says what the step does)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from prepare.manifest import (
    INDEX_FILE,
    MANIFEST_FILE,
    PreviousData,
    build_manifest,
    read_previous,
    staged_data_version,
    write_index,
    write_manifest,
)
from prepare.contradictions import (
    Contradictions,
    contradiction_problem,
    contradictions_report,
    find_contradictions,
)
from prepare.holdout import HoldoutCounts, decide, holdout_report
from prepare.merge import Deduplicated, InlinePool, Pool, compare_counts, deduplicate
from prepare.output import SplitWriter, UnitSummary, split_hashes, summarize_unit, write_quarantine, write_splits
from prepare.profile import PROFILE_SAMPLE, build_profile, compare, retrain_decision
from prepare.readers import InputFile, discover, split_large
from prepare.replay import NO_REPLAY, Replay, ReplayScan, replay_files, scan_replay_file
from prepare.replay_select import select_replay
from prepare.report import summary
from prepare.scan import FileScan, ScanSettings, merge_file_entries, scan_file, staged_units
from prepare.settings import PrepareSettings, SettingsError, parse_columns, parse_list
from prepare.split import HOLDOUT_EXAMPLES, HOLDOUT_MODES, SPLIT_NAMES, TRAIN, VALIDATION
from prepare.units import Unit, remove_files

DEFAULT_INPUT_DIR = Path("/opt/ml/processing/input/data")
DEFAULT_OUTPUT_DIR = Path("/opt/ml/processing/output")
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
PART_BYTES = 8 * 1024 * 1024  # big JSONL files are scanned in parts of about this size, in parallel
PROFILE_SALT = 0x5EED


class PrepareError(Exception):
    """The step cannot produce usable data; the message says why and what to look at."""

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report


@contextmanager
def worker_pool(files: list[InputFile], workers: int) -> Iterator[Pool]:
    """Worker processes for scanning and merging when there is enough data to gain from them."""
    size = sum(file.size for file in files)
    count = min(workers or os.cpu_count() or 1, len(files) + size // PART_BYTES)
    if count <= 1 or size < PARALLEL_MIN_BYTES:
        yield InlinePool()
        return
    with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool


def scan_inputs(files: list[InputFile], replay_inputs: list[InputFile], settings: ScanSettings, work: Path,
                pool: Pool) -> tuple[list[FileScan], list[ReplayScan]]:
    """Stage every file (or part) of the new data and of the replay input, biggest first so the workers
    finish together; results in file order."""
    jobs: list[tuple[InputFile, Callable[..., Any], tuple[Any, ...]]] = [
        *((file, scan_file, (file, settings, work / f"{number:06d}")) for number, file in enumerate(files)),
        *((file, scan_replay_file, (file, settings.seed, work / f"replay-{number:06d}"))
          for number, file in enumerate(replay_inputs))]
    order = sorted(range(len(jobs)), key=lambda number: jobs[number][0].start - (jobs[number][0].end or
                                                                                  jobs[number][0].size))
    futures = {number: pool.submit(jobs[number][1], *jobs[number][2]) for number in order}
    results = [futures[number].result() for number in range(len(jobs))]
    return results[:len(files)], results[len(files):]


def _roots(input_dir: Path | list[Path]) -> list[Path]:
    roots = [Path(item) for item in (input_dir if isinstance(input_dir, list) else [input_dir])]
    for root in roots:
        if not root.exists():
            raise PrepareError(f"input folder {root} does not exist")
    return roots


def prepare(input_dir: Path | list[Path], output_dir: Path, replay_dir: Path | None = None,
            tokenizer_dir: Path | None = None, settings: PrepareSettings | None = None,
            **overrides: Any) -> dict[str, Any]:
    """Run the step; return report.json's content.

    `overrides` are PrepareSettings fields. Raises PrepareError when it cannot produce data; the
    report and quarantine are still written when it fails on the data, so the user can see why.
    """
    try:
        settings = dataclasses.replace(settings or PrepareSettings(), **overrides)
    except SettingsError as error:
        raise PrepareError(str(error)) from error
    roots, output_dir = _roots(input_dir), Path(output_dir)
    files = discover(roots)
    if not files:
        raise PrepareError(f"input folder {', '.join(map(str, roots))} holds no files")
    output_dir.mkdir(parents=True, exist_ok=True)
    scan_settings = ScanSettings(settings.max_file_bytes, settings.max_tokens, settings.pii,
                                 frozenset(value.lower() for value in settings.pii_allow), settings.columns,
                                 Path(tokenizer_dir) if tokenizer_dir else None, settings.seed,
                                 settings.validation_fraction, settings.test_fraction, settings.holdout)
    replay_inputs = replay_files(replay_dir)
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=output_dir) as stage_dir, \
            worker_pool(files + replay_inputs, settings.workers) as pool:
        work = Path(stage_dir)
        files = split_large(files, PART_BYTES, settings.max_file_bytes, pool.map)
        replay_inputs = split_large(replay_inputs, PART_BYTES, settings.max_file_bytes, pool.map)
        scans, replay_scans = scan_inputs(files, replay_inputs, scan_settings, work, pool)
        units = staged_units(scans)
        deduplicated = deduplicate(units, settings.near_duplicate_threshold, pool, work)
        cleanup = pool.submit(remove_files, [path for unit in units for path in unit.dedup_files()])
        replay, replayed, contradictions = NO_REPLAY, [], None
        if replay_scans:
            kept_new = deduplicated.kept.save(work / "kept-new.bits")
            replay, replayed, available = select_replay(replay_scans, settings.replay_fraction, units, kept_new,
                                                        deduplicated.kept.size, pool, work / "replay")
            contradictions = find_contradictions(units, kept_new, deduplicated.kept.size, replay_scans, available,
                                                 replay.available, pool)
        written = _write_splits(settings, output_dir, scans, units, replayed, deduplicated, pool, work)
        write_quarantine(output_dir / "report" / "quarantine.jsonl", scans, replay_scans)
        previous = read_previous(replay_dir)
        replay_input = [scan.spill("ids", 0) for scan in replay_scans]
        counts = (compare_counts(previous, units, replayed, written.kept, written.size, deduplicated.kept.count(),
                                 pool, work, replay_input) if previous else None)
        cleanup.result()
        return _finish(settings, output_dir, scans, deduplicated, replay, written, previous, counts, contradictions)


@dataclass(frozen=True)
class Written:
    """The split files written: the writer (counts, hashes), what the report needs of the examples, the data
    version, the bitmap (saved at `kept`, `size` bits) of the examples written (new, then replayed) and what was
    held out of the facts."""

    writer: SplitWriter
    found: UnitSummary
    version: str
    kept: Path
    size: int
    holdout: HoldoutCounts


def _write_splits(settings: PrepareSettings, output_dir: Path, scans: list[FileScan], units: list[Unit],
                  replayed: list[Unit], deduplicated: Deduplicated, pool: Pool, work: Path) -> Written:
    """The split files and the index; the summaries of the examples, the split fixes and the data version.

    Holdout "phrasings" decides the held-out phrasings and re-asked examples first (holdout.py), and the
    split files are written while the workers summarize. Holdout "examples": the fixes that keep train and
    validation non-empty need every kept example's split (the summaries), unless more examples were staged
    for both than were dropped as duplicates: then none is moved, and the split files are written while the
    workers summarize; the facts are counted last.
    """
    size = deduplicated.kept.size + sum(unit.size for unit in replayed)
    kept = deduplicated.kept.resized(size)
    kept.set_range(deduplicated.kept.size, size)  # every replayed example staged is used
    kept_path = kept.save(work / "kept.bits")
    every_unit = [*units, *replayed]
    examples = kept.count()
    dropped = deduplicated.exact + deduplicated.near
    staged = [sum(scan.splits[code] for scan in scans) for code in range(len(SPLIT_NAMES))]
    by_examples = settings.holdout == HOLDOUT_EXAMPLES
    placement, holdout = None, HoldoutCounts()
    if not by_examples:
        placement, holdout = decide(units, kept_path, size, settings.seed, settings.validation_fraction,
                                    settings.test_fraction, settings.holdout, pool, work)
    may_move = by_examples and not (staged[TRAIN] > dropped and (staged[VALIDATION] > dropped
                                                                 or not settings.validation_fraction))

    def hash_splits(moved: dict[int, int]) -> Future[list[str]]:
        return pool.submit(split_hashes, units, replayed, kept_path, size, moved, placement)

    hashes = None if may_move else hash_splits({})  # the longest task first
    rate = min(1.0, PROFILE_SAMPLE / max(examples, 1))
    summaries = [pool.submit(summarize_unit, unit, kept_path, size, settings.seed, settings.seed ^ PROFILE_SALT, rate,
                             replay) for unit, replay in zip(every_unit, [False] * len(units) + [True] * len(replayed))]
    found = _merged(summaries) if may_move else UnitSummary()
    moved = found.tally.fixes(settings.validation_fraction > 0) if by_examples else {}
    hashes = hashes or hash_splits(moved)
    version = pool.submit(staged_data_version, every_unit, kept_path, size)
    index = pool.submit(write_index, output_dir / "train" / INDEX_FILE, every_unit, kept_path, size, examples)
    with SplitWriter(output_dir) as writer:
        write_splits(writer, units, replayed, kept, moved, placement.load() if placement else None)
    if by_examples:
        holdout = decide(units, kept_path, size, settings.seed, settings.validation_fraction, settings.test_fraction,
                         settings.holdout, pool, work, moved)[1]
    found = found if may_move else _merged(summaries)
    writer.hashes = hashes.result()
    index.result()
    return Written(writer, found, version.result(), kept_path, size, holdout)


def _merged(summaries: list[Future[UnitSummary]]) -> UnitSummary:
    """The units' summaries added up, in unit order."""
    found = UnitSummary()
    for part in summaries:
        found.merge(part.result())
    return found


def _finish(settings: PrepareSettings, output_dir: Path, scans: list[FileScan], deduplicated: Deduplicated,
            replay: Replay, written: Written, previous: PreviousData | None,
            counts: dict[str, int] | None, contradictions: Contradictions | None) -> dict[str, Any]:
    """Profile, compare, write manifest and report; fail (after writing the report) on unusable data."""
    kept, found, writer, version = deduplicated.kept.count(), written.found, written.writer, written.version
    profile = build_profile(kept + replay.used, found.prompt_chars, found.completion_chars, found.texts)
    comparison = compare(previous, counts, kept, profile, version)
    checks = {"holdout": holdout_report(settings.holdout, written.holdout),
              "contradictions": contradictions_report(contradictions, settings.max_changed_fraction,
                                                      settings.allow_changes)}
    report = _report(settings, scans, deduplicated, replay, writer, version, comparison, found.review, checks)
    report_dir = output_dir / "report"
    (report_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = report["rows"]
    problem = _data_problem(report, settings, replay.used)
    if problem:
        for path in [output_dir / name / f"{name}.jsonl" for name in SPLIT_NAMES] + [
                output_dir / "train" / MANIFEST_FILE, output_dir / "train" / INDEX_FILE]:
            path.unlink(missing_ok=True)
        raise PrepareError(
            f"{problem}: {rows['input']} rows read from {len(report['files'])} file(s), {rows['quarantined']} "
            f"quarantined (see {report_dir / 'quarantine.jsonl'}), {rows['duplicates']} duplicate(s), "
            f"{replay.used} replayed",
            report,
        )
    manifest = build_manifest(version, report["files"], writer.outputs(), rows, report["parameters"],
                              report["replay"], comparison.get("previous_data_version"), profile)
    write_manifest(output_dir / "train", manifest)
    return report


def _report(settings: PrepareSettings, scans: list[FileScan], deduplicated: Deduplicated, replay: Replay,
            writer: SplitWriter, version: str, comparison: dict[str, Any], review: list[dict[str, Any]],
            checks: dict[str, Any]) -> dict[str, Any]:
    """report.json's content; rows: input = kept + duplicates + quarantined (new data only); `checks`: the
    `holdout` and `contradictions` sections."""
    quarantined = sum(scan.quarantined for scan in scans)
    rows = {"input": sum(scan.rows for scan in scans), "kept": deduplicated.kept.count(),
            "duplicates": deduplicated.exact + deduplicated.near, "quarantined": quarantined}
    pii_found = sum((scan.pii_found for scan in scans), Counter())
    return {
        "rows": rows,
        "duplicates": {"exact": deduplicated.exact, "near": deduplicated.near},
        "quarantine_reasons": dict(sorted(sum((scan.reasons for scan in scans), Counter()).items())),
        "reject_rate": round(quarantined / max(rows["input"], 1), 6),
        "pii": {"mode": settings.pii, "found": dict(sorted(pii_found.items())),
                "rows": sum(scan.pii_rows for scan in scans)},
        "tokens": {"max_tokens": settings.max_tokens, "counter": scans[0].token_counter,
                   "counted": sum(scan.tokens_counted for scan in scans)},
        "replay": replay.counts(),
        "splits": dict(zip(SPLIT_NAMES, writer.counts)),
        **checks,
        "data_version": version,
        "comparison": comparison,
        "retrain": retrain_decision(comparison, settings.retrain_min_change),
        "files": merge_file_entries(scans),
        "parameters": settings.recorded(),
        "sample": review,  # the sampled new examples with the lowest ids (ids are hashes: a spread)
    }


def _data_problem(report: dict[str, Any], settings: PrepareSettings, replayed: int) -> str | None:
    rows = report["rows"]
    usable = rows["kept"] + replayed
    if rows["input"] and report["reject_rate"] > settings.max_reject_rate:
        return (f"{rows['quarantined']} of {rows['input']} rows quarantined ({report['reject_rate']:.1%}), over "
                f"--max-reject-rate {settings.max_reject_rate:.0%}")
    if not rows["kept"]:
        return "no new usable example, nothing new to learn from"
    if usable < settings.min_examples:
        return f"only {usable} usable example(s) remain, fewer than --min-examples {settings.min_examples}"
    return contradiction_problem(report["contradictions"])


def _number(accept: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse type: a float that `accept` allows, else an error saying what is expected."""
    def parse(text: str) -> float:
        value = float(text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value
    return parse


_below_one = _number(lambda value: 0 <= value < 1, "at least 0 and below 1")
_share = _number(lambda value: 0 <= value <= 1, "between 0 and 1")
_non_negative = _number(lambda value: value >= 0, "at least 0")
_replay_fraction = _number(lambda value: 0 < value <= 1, "greater than 0 and at most 1")


def _flag(text: str) -> bool:
    """An argparse type: true/false (as a pipeline parameter renders a boolean), yes/no, 1/0."""
    value = text.strip().lower()
    if value not in ("true", "false", "yes", "no", "1", "0"):
        raise argparse.ArgumentTypeError(f"must be true or false, got {text}")
    return value in ("true", "yes", "1")


def _columns(text: str) -> dict[str, str]:
    try:
        return parse_columns(text)
    except SettingsError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = PrepareSettings()
    parser = argparse.ArgumentParser(description="Validate, scrub, deduplicate, split and version raw company data.")
    add = parser.add_argument
    add("--input-dir", type=Path, action="append", default=None,
        help=f"folder or file of raw data, read recursively; repeat for several (default {DEFAULT_INPUT_DIR})")
    add("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
        help=f"root of train/, validation/, test/ and report/ (default {DEFAULT_OUTPUT_DIR})")
    add("--replay-dir", type=Path, default=None,
        help="a previous version's prepared train split (*.jsonl + manifest.json); missing or empty = no replay")
    add("--tokenizer-dir", type=Path, default=None,
        help="the base model (folder or model.tar.gz) whose tokenizer measures lengths; without it lengths are "
             "estimated")
    add("--replay-fraction", type=_replay_fraction, default=defaults.replay_fraction,
        help=f"share of each replayed source file to train on again, in (0, 1] (default {defaults.replay_fraction})")
    add("--validation-fraction", type=_below_one, default=defaults.validation_fraction,
        help=f"share of examples for validation, in [0, 1) (default {defaults.validation_fraction}); with holdout "
             "phrasings: held-out phrasings and re-asked one-phrasing facts; 0: no validation split")
    add("--test-fraction", type=_share, default=defaults.test_fraction,
        help=f"share of examples held out as a test split (default {defaults.test_fraction})")
    add("--holdout", choices=HOLDOUT_MODES, default=defaults.holdout,
        help="what validation/test hold out: 'phrasings' of facts that have several (a fact = examples with the same "
             "answer), never a fact's last phrasing in train, and re-ask one-phrasing facts (recall); 'examples': a "
             f"hash split of the examples, which withholds facts from training (default {defaults.holdout})")
    add("--max-changed-fraction", type=_share, default=defaults.max_changed_fraction,
        help="fail when the new data changes the answers of more than this share of the previous version's "
             f"examples (its train split, the replay input), unless --allow-changes (default "
             f"{defaults.max_changed_fraction})")
    add("--allow-changes", type=_flag, default=defaults.allow_changes, nargs="?", const=True,
        help="accept an export that changes more answers than --max-changed-fraction (true/false; no value: true)")
    add("--seed", type=int, default=defaults.seed, help=f"seed of the hash split (default {defaults.seed})")
    add("--min-examples", type=int, default=defaults.min_examples,
        help=f"fail when fewer usable examples (new + replayed) remain (default {defaults.min_examples})")
    add("--max-reject-rate", type=_share, default=defaults.max_reject_rate,
        help=f"fail when a larger share of rows is quarantined (default {defaults.max_reject_rate})")
    add("--max-tokens", type=int, default=defaults.max_tokens,
        help=f"quarantine examples longer than this many tokens (default {defaults.max_tokens})")
    add("--max-file-mb", type=float, default=defaults.max_file_mb,
        help=f"quarantine files bigger than this (default {defaults.max_file_mb})")
    add("--pii", choices=("redact", "block", "off"), default=defaults.pii,
        help="emails, phone and card numbers, keys and tokens: replace with [KIND] (redact), quarantine the row "
             f"(block) or keep (off) (default {defaults.pii})")
    add("--pii-allow", type=parse_list, default=(),
        help="values that are not private, comma-separated: exact values (a public support number) or @domain "
             "for every email address at a domain")
    add("--near-duplicate-threshold", type=float, default=defaults.near_duplicate_threshold,
        help=f"estimated Jaccard similarity at which an example is a near-duplicate (default "
             f"{defaults.near_duplicate_threshold})")
    add("--columns", type=_columns, default={},
        help="column mapping FIELD=COLUMN,... (fields: prompt, completion, question, answer, instruction, input, "
             "output, messages, conversations, text, system)")
    add("--retrain-min-change", type=_non_negative, default=defaults.retrain_min_change,
        help="retrain score (share changed / distribution shift vs the previous version, 0..1) below which the "
             f"report recommends skipping training (default {defaults.retrain_min_change}: always train; above 1: "
             "never, data checks only)")
    add("--workers", type=int, default=defaults.workers, help="scanning processes (default 0: one per CPU)")
    return parser.parse_args(argv)


SETTING_NAMES = tuple(field.name for field in dataclasses.fields(PrepareSettings))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        settings = PrepareSettings(**{name: getattr(args, name) for name in SETTING_NAMES})
        report = prepare(args.input_dir or [DEFAULT_INPUT_DIR], args.output_dir, args.replay_dir, args.tokenizer_dir,
                         settings)
    except (PrepareError, SettingsError) as error:
        if getattr(error, "report", None) is not None:
            print(summary(error.report))  # type: ignore[attr-defined]
        print(f"prepare: error: {error}", file=sys.stderr)
        return 1
    print(summary(report, time.perf_counter() - started))
    return 0

