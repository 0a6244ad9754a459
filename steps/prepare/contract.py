"""The prepare step's contract: every prepare.py argument, declared once (common/contract.py explains the fields).

prepare.py's parser and PrepareSettings' defaults come from ARGUMENTS; the control plane reads this file by
path (pipelines/step_contracts.py): DataConfig takes its defaults from here, the PrepareData step passes every
argument that has a config key, in this order (as a pipeline parameter where `parameter` is set). The
flags are spelled with dashes (`--validation-fraction`), as the pipeline has always passed them.

Standard library and common/contract.py only.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from common.contract import Argument, parse_bool, parse_list

FLAG_SEPARATOR = "-"  # the pipeline passes --validation-fraction (the parser accepts both spellings)

DEFAULT_INPUT_DIR = Path("/opt/ml/processing/input/data")
DEFAULT_OUTPUT_DIR = Path("/opt/ml/processing/output")
PII_MODES = ("redact", "block", "off")
HOLDOUT_PHRASINGS, HOLDOUT_EXAMPLES = "phrasings", "examples"
HOLDOUT_MODES = (HOLDOUT_PHRASINGS, HOLDOUT_EXAMPLES)
# The file that marks the pipeline's incoming/ prefix (pipelines/s3_layout.py writes it; an S3 input cannot be an
# empty prefix): never data, skipped wherever it is found.
INCOMING_MARKER = "_CONTINUUM_INCOMING"
EMPTY_INPUT_MODES = ("fail", "report")
COLUMN_FIELDS = "prompt, completion, question, answer, instruction, input, output, messages, conversations, text, system"


def bounded(accept: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse type: a float that `accept` allows, else an error saying what is expected."""
    def parse(text: str) -> float:
        value = float(text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value
    parse.__name__ = "float"
    return parse


below_one = bounded(lambda value: 0 <= value < 1, "at least 0 and below 1")
share = bounded(lambda value: 0 <= value <= 1, "between 0 and 1")
non_negative = bounded(lambda value: value >= 0, "at least 0")
replay_share = bounded(lambda value: 0 < value <= 1, "greater than 0 and at most 1")


def parse_flag(text: str) -> bool:
    """true/false (as a pipeline parameter renders a boolean), yes/no, 1/0."""
    try:
        return parse_bool(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be true or false, got {text}") from None


def parse_columns(text: str) -> dict[str, str]:
    """`prompt=query,completion=response` → {"prompt": "query", "completion": "response"}."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        canonical, sep, source = item.partition("=")
        if not sep or not canonical.strip() or not source.strip():
            raise argparse.ArgumentTypeError(f"--columns expects FIELD=COLUMN pairs separated by commas, got {item!r}")
        mapping[canonical.strip().lower()] = source.strip()
    return mapping


FOLDERS = "folders (container contract)"
DATA = "data checks"
SPEED = "speed"

ARGUMENTS = (
    Argument("input_dir", Path, action="append", group=FOLDERS,
             help=f"folder or file of raw data, read recursively; repeat for several (default {DEFAULT_INPUT_DIR})"),
    Argument("output_dir", Path, DEFAULT_OUTPUT_DIR, group=FOLDERS,
             help="root of train/, validation/, test/ and report/ (default %(default)s)"),
    Argument("replay_dir", Path, group=FOLDERS,
             help="a previous version's prepared train split (*.jsonl + manifest.json); missing or empty = no replay"),
    Argument("empty_input", str, "fail", choices=EMPTY_INPUT_MODES, group=FOLDERS,
             help=f"no data file in the input (only {INCOMING_MARKER}, or nothing): fail, or write report/report.json "
                  "with input_files 0 and exit 0 so the pipeline ends in its NoInputData FailStep (default "
                  "%(default)s)"),
    Argument("raw_output_dir", Path, group=FOLDERS,
             help="also copy the input's data files to DIR/<content digest>/ and record the digest in report.json as "
                  "input_digest (the pipeline versions each round's raw data under <s3 prefix>/data/ this way, the "
                  "digest `continuum run` staging gives the same files)"),
    Argument("tokenizer_dir", Path, group=FOLDERS,
             help="the base model (folder or model.tar.gz) whose tokenizer measures lengths; without it lengths are "
                  "estimated"),

    Argument("replay_fraction", replay_share, 1.0, config="data.replay_fraction", parameter=True, group=DATA,
             help="share of each replayed source file to train on again, in (0, 1] (default %(default)s)"),
    Argument("retrain_min_change", non_negative, 0.0, config="data.retrain_min_change", parameter=True, group=DATA,
             help="retrain score (share changed / distribution shift vs the previous version, 0..1) below which the "
                  "report recommends skipping training (default %(default)s: always train; above 1: never, data "
                  "checks only)"),
    Argument("allow_changes", parse_flag, False, config="data.allow_changes", parameter=True,
             parameter_as="AllowDataChanges", nargs="?", const=True, group=DATA,
             help="accept an export that changes more answers than --max-changed-fraction (true/false; no value: "
                  "true)"),
    Argument("validation_fraction", below_one, 0.1, config="data.validation_fraction", group=DATA,
             help="share of examples for validation, in [0, 1) (default %(default)s); with holdout phrasings: "
                  "held-out phrasings and re-asked one-phrasing facts; 0: no validation split"),
    Argument("test_fraction", share, 0.0, config="data.test_fraction", group=DATA,
             help="share of examples held out as a test split (default %(default)s)"),
    Argument("seed", int, 42, config="data.seed", group=DATA, help="seed of the hash split (default %(default)s)"),
    Argument("min_examples", int, 32, config="data.min_examples", group=DATA,
             help="fail when fewer usable examples (new + replayed) remain (default %(default)s)"),
    Argument("max_reject_rate", share, 0.5, config="data.max_reject_rate", group=DATA,
             help="fail when a larger share of rows is quarantined (default %(default)s)"),
    Argument("max_tokens", int, 2048, config="data.max_tokens", fallback="training.max_seq_length", group=DATA,
             help="quarantine examples longer than this many tokens (default %(default)s; the pipeline passes "
                  "data.max_tokens, else training.max_seq_length)"),
    Argument("max_file_mb", float, 1024, config="data.max_file_mb", group=DATA,
             help="quarantine files bigger than this (default %(default)s)"),
    Argument("max_row_mb", float, 1.0, config="data.max_row_mb", group=DATA,
             help="quarantine rows (a line, a JSON element, a paragraph) bigger than this, found while reading, "
                  "before parsing or tokenizing (default %(default)s)"),
    Argument("pii", str, "redact", choices=PII_MODES, config="data.pii", group=DATA,
             help="emails, phone and card numbers, keys and tokens: replace with [KIND] (redact), quarantine the row "
                  "(block) or keep (off) (default %(default)s)"),
    Argument("near_duplicate_threshold", float, 0.85, config="data.near_duplicate_threshold", group=DATA,
             help="estimated Jaccard similarity at which an example is a near-duplicate (default %(default)s)"),
    Argument("holdout", str, HOLDOUT_PHRASINGS, choices=HOLDOUT_MODES, config="data.holdout", group=DATA,
             help="what validation/test hold out: 'phrasings' of facts that have several (a fact = examples with the "
                  "same answer), never a fact's last phrasing in train, and re-ask one-phrasing facts (recall); "
                  "'examples': a hash split of the examples, which withholds facts from training (default "
                  "%(default)s)"),
    Argument("max_changed_fraction", share, 0.3, config="data.max_changed_fraction", group=DATA,
             help="fail when the new data changes the answers of more than this share of the previous version's "
                  "examples (its train split, the replay input), unless --allow-changes (default %(default)s)"),
    Argument("pii_allow", parse_list, (), config="data.pii_allow", group=DATA,
             help="values that are not private, comma-separated: exact values (a public support number) or @domain "
                  "for every email address at a domain"),
    Argument("columns", parse_columns, {}, config="data.columns", group=DATA,
             help=f"column mapping FIELD=COLUMN,... (fields: {COLUMN_FIELDS})"),
    Argument("workers", int, 0, group=SPEED, help="scanning processes (default 0: one per CPU)"),
)  # fmt: skip
