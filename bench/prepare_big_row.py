"""Peak memory and time of the prepare step on a file holding one huge row (60 MB by default).

Writes a JSONL file with a few ordinary questions and one row whose answer is `--row-mb` MB of text, runs
`steps/prepare.py` on it in a subprocess (with the tiny demo tokenizer, and without a tokenizer), and prints
per run: seconds, the child's peak RSS, what happened to the big row, and the sizes of report.json and
quarantine.jsonl.

    .venv/bin/python bench/prepare_big_row.py [--row-mb 60] [--kind blob|words] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_input(folder: Path, row_mb: float, kind: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "faq.jsonl"
    # "words": ordinary words repeated; "blob": one 60 MB word (base64-like), which a word count sees as one.
    # Written a MB at a time: this process stays small, so the measured child (forked from it) starts small too.
    piece = "warehouse robots carry batteries " if kind == "words" else "QmF0dGVyaWVz"
    chunk = piece * (1024 * 1024 // len(piece))
    with path.open("w", encoding="utf-8") as handle:
        for number in range(40):
            handle.write(json.dumps({"prompt": f"What is the return window for order type {number}?",
                                     "completion": f"Orders of type {number} can be returned within {number + 10} days."})
                         + "\n")
        handle.write('{"prompt": "Tell me everything.", "completion": "')
        for _ in range(int(row_mb)):
            handle.write(chunk)
        handle.write(chunk[:int((row_mb - int(row_mb)) * len(chunk))] + '"}\n')
    return path


def run(input_dir: Path, output_dir: Path, tokenizer_dir: Path | None, steps: Path) -> dict:
    command = [sys.executable, str(steps / "prepare.py"), "--input-dir", str(input_dir), "--output-dir",
               str(output_dir), "--min-examples", "1", "--max-reject-rate", "0.5", "--workers", "1"]
    if tokenizer_dir is not None:
        command += ["--tokenizer-dir", str(tokenizer_dir)]
    output_dir.mkdir(parents=True, exist_ok=True)
    log = output_dir.parent / f"{output_dir.name}.log"
    began = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=steps)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS (and its waited-for workers')
    seconds = time.perf_counter() - began
    peak_mb = usage.ru_maxrss / 1024  # Linux: KiB
    returncode = os.waitstatus_to_exitcode(status)
    report_path, quarantine_path = output_dir / "report" / "report.json", output_dir / "report" / "quarantine.jsonl"
    big = None
    if quarantine_path.is_file():
        for line in quarantine_path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["line"] == 41:
                big = f"quarantined: {record['reason']} ({record['detail'][:100]})"
    return {"exit": returncode, "seconds": seconds, "peak_mb": peak_mb,
            "big_row": big or "kept (not quarantined)",
            "report_bytes": report_path.stat().st_size if report_path.is_file() else None,
            "quarantine_bytes": quarantine_path.stat().st_size if quarantine_path.is_file() else None,
            "stderr": log.read_text().strip().splitlines()[-1:] if returncode else []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row-mb", type=float, default=60.0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "continuum-bench-big-row")
    parser.add_argument("--kind", choices=["words", "blob"], default="blob")
    parser.add_argument("--no-tokenizer-only", action="store_true")
    parser.add_argument("--steps", type=Path, default=REPO / "steps",
                        help="the steps folder to measure (e.g. an older commit's: git archive REV steps | tar -x)")
    args = parser.parse_args()
    input_dir = args.work / "input"
    write_input(input_dir, args.row_mb, args.kind)
    tokenizer_dir = args.work / "tiny-model"
    if not (tokenizer_dir / "tokenizer.json").is_file():
        from pipelines.demo.sample_data import corpus_texts
        from pipelines.demo.tiny_model import build_tiny_model

        build_tiny_model(tokenizer_dir, corpus_texts(), seed=0)
    runs = [("no tokenizer", None)] + ([] if args.no_tokenizer_only else [("tiny tokenizer", tokenizer_dir)])
    print(f"input: 40 short rows + one {args.row_mb:g} MB row of {args.kind} ({(input_dir / 'faq.jsonl').stat().st_size:,} bytes)")
    for label, tokenizer in runs:
        result = run(input_dir, args.work / f"out-{label.replace(' ', '-')}", tokenizer, args.steps.resolve())
        print(f"{label}: exit {result['exit']}, {result['seconds']:.1f} s, peak RSS {result['peak_mb']:.0f} MB; "
              f"big row {result['big_row']}; report.json {result['report_bytes']:,} bytes, quarantine.jsonl "
              f"{result['quarantine_bytes']:,} bytes" + (f"; {result['stderr']}" if result["stderr"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
