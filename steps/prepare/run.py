"""The prepare step's run and command line (entry script: steps/prepare.py, which says what the step does)."""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
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

from common.contract import build_parser
from prepare.contract import ARGUMENTS, DEFAULT_INPUT_DIR, FLAG_SEPARATOR
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
from prepare.settings import PrepareSettings, SettingsError
from prepare.split import HOLDOUT_EXAMPLES, SPLIT_NAMES, TRAIN, VALIDATION
from prepare.units import Unit, remove_files

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
    try:
        files = discover(roots)
    except ValueError as error:  # an input that is no file or folder (a FIFO...), named
        raise PrepareError(str(error)) from error
    if not files:
        raise PrepareError(f"input folder {', '.join(map(str, roots))} holds no files")
    output_dir.mkdir(parents=True, exist_ok=True)
    scan_settings = ScanSettings(settings.max_file_bytes, settings.max_tokens, settings.pii,
                                 frozenset(value.lower() for value in settings.pii_allow), settings.columns,
                                 Path(tokenizer_dir) if tokenizer_dir else None, settings.seed,
                                 settings.validation_fraction, settings.test_fraction, settings.holdout,
                                 settings.max_row_bytes)
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
    files = merge_file_entries(scans)
    return {
        "input_files": len(files),  # the pipeline's CheckInputData reads it (0 only in write_empty_report's)
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
        "files": files,
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


def empty_input_problem(input_dir: Path | list[Path]) -> str | None:
    """Why the input holds no data (no file but the incoming marker), or None when it holds some."""
    roots = _roots(input_dir)
    if discover(roots):
        return None
    return f"no data file in {', '.join(map(str, roots))}"


def input_digest(files: list[InputFile]) -> str:
    """The content digest of the input's data files: sha256 over each relative path + NUL + bytes, in path order,
    16 hex digits (pipelines/s3_layout.py's content_digest of the same folder gives the same)."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda item: Path(item.name).parts):
        digest.update(file.name.encode("utf-8") + b"\0")
        with file.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def version_raw_input(input_dir: Path | list[Path], raw_output_dir: Path, output_dir: Path) -> str:
    """Copy the input's data files under raw_output_dir/<digest>/ and add `input_digest` to report.json."""
    files = discover(_roots(input_dir))
    version = input_digest(files)
    for file in files:
        target = Path(raw_output_dir) / version / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file.path, target)
    report_file = Path(output_dir) / "report" / "report.json"
    report = json.loads(report_file.read_text(encoding="utf-8"))
    report_file.write_text(json.dumps({**report, "input_digest": version}, indent=2, ensure_ascii=False) + "\n",
                           encoding="utf-8")
    return version


def write_empty_report(output_dir: Path, problem: str) -> dict[str, Any]:
    """report/report.json for an input without data: `input_files` 0 and the problem, nothing else written."""
    report = {"input_files": 0, "empty_input": problem, "data_version": "", "input_digest": "",
              "retrain": {"score": 0.0}}
    report_dir = Path(output_dir) / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """prepare.py's arguments, parsed by the parser built from its contract (prepare/contract.py)."""
    description = "Validate, scrub, deduplicate, split and version raw company data."
    return build_parser(ARGUMENTS, description, FLAG_SEPARATOR).parse_args(argv)


SETTING_NAMES = tuple(field.name for field in dataclasses.fields(PrepareSettings))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        settings = PrepareSettings(**{name: getattr(args, name) for name in SETTING_NAMES})
        problem = empty_input_problem(args.input_dir or [DEFAULT_INPUT_DIR]) if args.empty_input == "report" else None
        if problem:
            write_empty_report(args.output_dir, problem)
            print(f"prepare: {problem}; wrote {Path(args.output_dir) / 'report' / 'report.json'} (input_files 0)")
            return 0
        report = prepare(args.input_dir or [DEFAULT_INPUT_DIR], args.output_dir, args.replay_dir, args.tokenizer_dir,
                         settings)
    except (PrepareError, SettingsError) as error:
        if getattr(error, "report", None) is not None:
            print(summary(error.report))  # type: ignore[attr-defined]
        print(f"prepare: error: {error}", file=sys.stderr)
        return 1
    if args.raw_output_dir:
        version = version_raw_input(args.input_dir or [DEFAULT_INPUT_DIR], args.raw_output_dir, args.output_dir)
        print(f"prepare: input data files copied to {Path(args.raw_output_dir) / version}")
    print(summary(report, time.perf_counter() - started))
    return 0

