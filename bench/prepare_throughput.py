"""Prepare-step throughput and memory on synthetic company data (target: >= 50,000 records/s, flat memory).

Writes N synthetic records (question/answer JSONL shards, with ~2% exact duplicates, ~1% near
duplicates, ~0.5% PII and ~0.5% malformed lines), runs `steps/prepare.py` on them as the
pipeline does (a subprocess), and prints records/s, the CPU time of the step's process tree per
record (the figure to compare when other work loads the machine: the load average is printed
with it) and the peak resident memory of the process tree (sampled every 20 ms). The report's counts
are checked against what was injected (exit code 1 when they differ). Run several sizes to see
whether memory grows with input; it should not (per-example keys are spilled to
disk and decided a bounded group at a time, see steps/prepare/spill.py):

    python bench/prepare_throughput.py --records 100000 1000000 3000000

With --replay, each size is prepared twice: a first version of as many records (another seed),
then the records again with that version's train split replayed (--replay-fraction, default 1),
whose numbers are printed: memory must not grow with the replayed version either.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

STEPS_DIR = Path(__file__).resolve().parents[1] / "steps"
WORDS = ("robot battery charge warranty shipping order return price model support hours days clean floor vacuum "
         "speed weight customer account reset firmware update camera lidar sensor dock map room schedule app wifi "
         "error code fault repair replace filter brush wheel motor noise suction carpet tile pet hair dust bin "
         "empty full light blink green red orange button power cable adapter europe canada express standard").split()


@dataclass
class Injected:
    """What `synthetic_lines` put in: the counts prepare's report must show."""

    malformed: int = 0  # broken lines, copies of them included: quarantined
    exact: int = 0  # copies of an earlier well-formed line: exact duplicates
    near: int = 0  # first copies of an earlier record with " thanks" appended: near-duplicates
    pii: int = 0  # well-formed lines with an e-mail address and a phone number (redacted, kept), copies included

    def problems(self, count: int, report: dict) -> list[str]:
        """How prepare's report differs from what was injected (MinHash may miss a few near-duplicates)."""
        rows, found = report["rows"], report["duplicates"]
        expected = {"input": count, "quarantined": self.malformed, "exact duplicates": self.exact,
                    "PII rows": self.pii, "kept": count - self.malformed - self.exact - found["near"]}
        seen = {"input": rows["input"], "quarantined": rows["quarantined"], "exact duplicates": found["exact"],
                "PII rows": report["pii"]["rows"], "kept": rows["kept"]}
        wrong = [f"{name} {seen[name]:,}, expected {value:,}" for name, value in expected.items() if seen[name] != value]
        if not 0.85 * self.near - 2 <= found["near"] <= self.near:
            wrong.append(f"near duplicates {found['near']:,}, injected {self.near:,} (at least 85% must be found)")
        if set(report["quarantine_reasons"]) - {"malformed_json"}:
            wrong.append(f"quarantine reasons {report['quarantine_reasons']}, injected only malformed_json")
        return wrong


def synthetic_lines(count: int, seed: int) -> tuple[list[str], Injected]:
    """`count` JSONL lines of question/answer records with duplicates, PII and a few broken lines, and what
    was injected."""
    rng = random.Random(seed)
    lines: list[str] = []
    injected = Injected()
    seen: set[str] = set()
    broken: set[int] = set()
    last: dict[str, str] | None = None

    def add(line: str, near: bool = False) -> None:
        if line in seen:
            injected.exact += 1
        else:
            injected.near += near
            seen.add(line)
        injected.pii += "@example.com" in line
        lines.append(line)

    for index in range(count):
        roll = rng.random()
        if lines and roll < 0.02:
            copied = rng.randrange(len(lines))
            if copied in broken:
                injected.malformed += 1
                broken.add(len(lines))
                lines.append(lines[copied])
            else:
                add(lines[copied])
            continue
        question = " ".join(rng.choices(WORDS, k=rng.randint(6, 16))) + f" for model X{index}?"
        answer = " ".join(rng.choices(WORDS, k=rng.randint(12, 40))) + "."
        if roll < 0.03 and last is not None:
            add(json.dumps({"question": last["question"], "answer": last["answer"] + " thanks"}), near=True)
            continue
        if roll < 0.035:
            answer += f" Contact jane.doe{index}@example.com or call 555-{index % 900 + 100}-{index % 9000 + 1000}."
        elif roll < 0.04:
            injected.malformed += 1
            broken.add(len(lines))
            lines.append('{"question": "' + question + '", "answer": ')
            continue
        last = {"question": question, "answer": answer}
        add(json.dumps(last))
    return lines, injected


def write_shards(lines: list[str], folder: Path, shards: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    per_shard = -(-len(lines) // shards)
    for shard in range(shards):
        text = "\n".join(lines[shard * per_shard:(shard + 1) * per_shard]) + "\n"
        (folder / f"part-{shard:03d}.jsonl").write_text(text, encoding="utf-8")
        size += len(text.encode("utf-8"))
    return size


def run_prepare(input_dir: Path, output_dir: Path, extra: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds of the process tree, peak RSS of the tree in bytes, stdout) of one prepare run."""
    command = [sys.executable, "prepare.py", "--input-dir", str(input_dir), "--output-dir", str(output_dir),
               "--max-reject-rate", "1", *extra]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=STEPS_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"prepare failed ({process.returncode}):\n{output}")
    return seconds, cpu, peak, output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--shards", type=int, default=8, help="input files (scanned in parallel)")
    parser.add_argument("--tokenizer-dir", type=Path, default=None, help="measure lengths with this tokenizer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replay", action="store_true",
                        help="replay a first version of as many records (measured: the second run)")
    parser.add_argument("--replay-fraction", type=float, default=1.0)
    args = parser.parse_args(argv)
    extra = ["--tokenizer-dir", str(args.tokenizer_dir)] if args.tokenizer_dir else []
    failed = False
    print(f"cpus {psutil.cpu_count()} | load average {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}")
    for count in args.records:
        with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
            runs = extra
            if args.replay:
                write_shards(synthetic_lines(count, args.seed + 1)[0], Path(tmp) / "previous-in", args.shards)
                run_prepare(Path(tmp) / "previous-in", Path(tmp) / "previous", extra)
                runs = [*extra, "--replay-dir", str(Path(tmp) / "previous" / "train"),
                        "--replay-fraction", str(args.replay_fraction)]
            lines, injected = synthetic_lines(count, args.seed)
            size = write_shards(lines, Path(tmp) / "in", args.shards)
            del lines
            load = psutil.getloadavg()[0]
            seconds, cpu, peak, output = run_prepare(Path(tmp) / "in", Path(tmp) / "out", runs)
            report = json.loads((Path(tmp) / "out" / "report" / "report.json").read_text(encoding="utf-8"))
        rows = report["rows"]
        print(f"records {count:>9,} | input {size / 2**20:7.1f} MiB | load {load:4.2f} | {seconds:6.2f} s | "
              f"{count / seconds:9,.0f} records/s | CPU {cpu:6.1f} s ({cpu / count * 1e6:4.1f} us/record) | "
              f"peak RSS (process tree) {peak / 2**20:7.1f} MiB | "
              f"kept {rows['kept']:,} dup {rows['duplicates']:,} ({report['duplicates']['near']:,} near) "
              f"quarantined {rows['quarantined']:,} PII rows {report['pii']['rows']:,}"
              + (f" replayed {report['replay']['used']:,}" if args.replay else ""))
        problems = injected.problems(count, report)
        for problem in problems:
            print(f"FAILED: {problem}", file=sys.stderr)
        failed = failed or bool(problems)
    print(output.strip().splitlines()[0])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
