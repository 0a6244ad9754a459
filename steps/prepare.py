"""Prepare step: raw company data in; validated, PII-scrubbed, deduplicated, split and versioned examples out.

Reads every file under the input folder(s), recursively (JSONL, JSON, CSV/TSV, text, Markdown,
Parquet, gzip variants; see prepare/readers.py), maps each record to the training schema
(prompt/completion + chat `messages`), quarantines bad rows (and junk answers) with file, line and
reason, redacts or blocks PII, drops exact and near duplicates, holds out phrasings of facts (never
a fact: one-phrasing facts are re-asked instead; `--holdout examples`: a seeded hash split of the
examples), mixes in a replay sample of the previous version's train split and fails when the export
contradicts too many of the previous version's answers (unless `--allow-changes`). Writes under the output folder:
train/train.jsonl (+ manifest.json, examples.index.npz), validation/validation.jsonl,
test/test.jsonl, report/report.json and report/quarantine.jsonl. Files are scanned in parallel
worker processes and streamed, so memory stays flat as the input grows.
"""
from prepare import main

if __name__ == "__main__":
    raise SystemExit(main())
