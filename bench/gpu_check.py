"""The checks of bench/gpu_check.sh, run in one process (the ML imports are paid once) and summarised.

Each check is an existing bench script's main() with its arguments; its output goes to the console
and to OUT/<check>.log, its numbers to OUT/<check>.json. A check that fails or raises is reported
and the next one still runs. OUT/summary.md and OUT/summary.json hold the table printed at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, TextIO

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "steps"))

# Sizes: full (one H100, <= 8 minutes in all) and --tiny (CPU, < 1 minute).
FULL = {"shape_small": "qwen2.5-0.5b", "shape_large": "qwen2.5-1.5b", "examples": "1200", "heldout": "32",
        "tokens_per_batch": "8192", "warmup": "5", "qlora_steps": "60", "eval_suites": "company_facts,company_quiz",
        "eval_repeat": "1", "eval_rounds": "1", "packing_examples": "16", "median": "150"}
TINY = {"shape_small": "qwen2.5-tiny", "shape_large": "qwen2.5-tiny", "examples": "48", "heldout": "8",
        "tokens_per_batch": "0", "warmup": "2", "qlora_steps": "12", "eval_suites": "company_facts,company_quiz",
        "eval_repeat": "1", "eval_rounds": "1", "packing_examples": "8", "median": "40"}


class Tee:
    """Writes to several streams (the console and a check's log)."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def close(self) -> None:
        """Leaves the streams open (a library's log handler may hold this object past the check)."""

    def isatty(self) -> bool:
        return False


def run_check(name: str, main: Callable[[list[str]], int], argv: list[str], out: Path) -> dict[str, Any]:
    """main(argv) with its output teed to out/<name>.log; rc, seconds and any error."""
    print(f"== {name}: {' '.join(argv)}", flush=True)
    started = time.perf_counter()
    error = None
    with (out / f"{name}.log").open("w", encoding="utf-8") as log:
        console_out, console_err = sys.stdout, sys.stderr
        with contextlib.redirect_stdout(Tee(console_out, log)), contextlib.redirect_stderr(Tee(console_err, log)):
            try:
                rc = int(main(argv) or 0)
            except SystemExit as exit_:
                rc, error = (exit_.code if isinstance(exit_.code, int) else 1), str(exit_)
            except Exception:  # noqa: BLE001  (one check's failure must not stop the others)
                rc, error = 1, traceback.format_exc()
                print(error, file=sys.stderr)
    seconds = time.perf_counter() - started
    print(f"-- {name}: {'ok' if rc == 0 else f'FAILED (rc {rc})'} in {seconds:.1f}s", flush=True)
    return {"rc": rc, "seconds": seconds, "error": error}


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def summary_rows(out: Path, runs: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(check, result, numbers) rows of the summary table."""
    rows: list[tuple[str, str, str]] = []
    for name, label in (("train_small", "train (0.5B check)"), ("train_large", "train (1.5B check)")):
        data = _read(out / f"{name}.json")
        if data is None:
            rows.append((name, f"FAILED (rc {runs.get(name, {}).get('rc')})", "no results; see its log"))
            continue
        for recipe, reason in data.get("skipped", {}).items():
            rows.append((f"{label} {data['model']} {recipe}", "skipped", reason))
        by_recipe = {r["recipe"]: r for r in data["results"]}
        ours = by_recipe.get("ours")
        for recipe, result in by_recipe.items():
            loss = "-" if result["heldout_loss"] is None else f"{result['heldout_loss']:.4f}"
            numbers = f"{result['tokens_per_second']:,.0f} tok/s, MFU {result['mfu']:.1%}, held-out loss {loss}"
            if ours is not None and result is not ours:
                target = {"hf-baseline": 15.0, "trl-sft": 1.5}[recipe]
                ratio = ours["tokens_per_second"] / result["tokens_per_second"]
                numbers += f"; ours {ratio:.2f}x (target >= {target:g}x on the H100)"
            if recipe == "ours" and name == "train_large":
                numbers += " (target MFU >= 45% at 1.5B on the H100)"
            rows.append((f"{label} {data['model']} {recipe}", "ok", numbers))
    qlora = _read(out / "qlora.json")
    if qlora is None:
        rows.append(("qlora", f"FAILED (rc {runs.get('qlora', {}).get('rc')})", "see qlora.log"))
    else:
        logits = qlora["logits"]
        base = "full-precision base" if qlora["nf4_skipped"] else "NF4 base"
        if qlora["nf4_skipped"]:
            rows.append((f"qlora {qlora['shape']} NF4", "skipped", f"skipped: {qlora['nf4_skipped']}"))
        rows.append((f"qlora {qlora['shape']} ({base})", "PASSED" if qlora["passed"] else "FAILED",
                     f"loss {qlora['initial_train_loss']:.3f} -> {qlora['train_loss']:.3f} in {qlora['steps']} steps; "
                     f"saved, merged, reloaded: logits mean |diff| {logits['mean_abs_diff']:.2e} "
                     f"(std {logits['logits_std']:.2f}), top-1 agreement {logits['top1_agreement']:.1%}"))
    evaluation = _read(out / "eval.json")
    if evaluation is None:
        rows.append(("eval", f"FAILED (rc {runs.get('eval', {}).get('rc')})", "see eval.log"))
    else:
        same = evaluation["same_answers"] == evaluation["cases"]
        rows.append((f"eval ({evaluation['device']})", "ok" if same else "ANSWERS DIFFER",
                     f"batched {evaluation['speed_up']:.1f}x the per-case loop (target >= 10x on CUDA), same answers "
                     f"{evaluation['same_answers']}/{evaluation['cases']}"))
    packing = _read(out / "packing.json")
    if packing is None:
        rows.append(("packing", f"FAILED (rc {runs.get('packing', {}).get('rc')})", "see packing.log"))
    else:
        rows.append((f"packing ({packing['device']} {packing['dtype']}, {packing['attention']})",
                     "PASSED" if packing["passed"] else "FAILED",
                     f"per-example loss max |diff| {packing['max_abs_diff']:.2e} (tolerance {packing['tolerance']:g})"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="every shape and size shrunk: runs on a CPU in < 1 minute")
    args = parser.parse_args(argv)
    from train.quiet import quiet_libraries

    quiet_libraries(verbose=False)
    import eval_throughput
    import packing_check
    import qlora_check
    import torch
    import train_throughput

    size = TINY if args.tiny else FULL
    out = args.out.resolve()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (no CUDA)"
    print(f"gpu_check{' --tiny' if args.tiny else ''} on {card}, torch {torch.__version__}; writing {out}", flush=True)
    started = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    common = ["--examples", size["examples"], "--heldout", size["heldout"], "--tokens-per-batch",
              size["tokens_per_batch"], "--warmup-steps", size["warmup"], "--median-tokens", size["median"],
              "--work-dir", str(work / "train")]
    runs["train_small"] = run_check("train_small", train_throughput.main, [
        "--model", size["shape_small"], "--recipe", "hf-baseline,trl-sft,ours", *common,
        "--json", str(out / "train_small.json")], out)
    runs["train_large"] = run_check("train_large", train_throughput.main, [
        "--model", size["shape_large"], "--recipe", "ours", *common, "--json", str(out / "train_large.json")], out)
    runs["qlora"] = run_check("qlora", qlora_check.main, [
        "--shape", size["shape_small"], "--steps", size["qlora_steps"], "--work-dir", str(work / "qlora"),
        "--json", str(out / "qlora.json")], out)
    qlora = _read(out / "qlora.json")
    model = ["--model", qlora["model_dir"]] if qlora else ["--shape", size["shape_small"]]
    runs["eval"] = run_check("eval", eval_throughput.main, [
        *model, "--suites", size["eval_suites"], "--repeat", size["eval_repeat"], "--rounds", size["eval_rounds"],
        "--json", str(out / "eval.json")], out)
    runs["packing"] = run_check("packing", packing_check.main, [
        "--shape", size["shape_small"], "--examples", size["packing_examples"], "--median-tokens", size["median"],
        "--json", str(out / "packing.json")], out)

    rows = summary_rows(out, runs)
    width = [max(len(row[k]) for row in rows + [("check", "result", "numbers")]) for k in range(2)]
    lines = [f"gpu_check summary ({card}; {time.perf_counter() - started:.0f}s)",
             f"{'check':<{width[0]}}  {'result':<{width[1]}}  numbers"]
    lines += [f"{check:<{width[0]}}  {result:<{width[1]}}  {numbers}" for check, result, numbers in rows]
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    (out / "summary.md").write_text("```\n" + text + "\n```\n")
    (out / "summary.json").write_text(json.dumps({"card": card, "tiny": args.tiny, "runs": runs,
                                                  "rows": [list(row) for row in rows]}, indent=1) + "\n")
    return 0 if all(run["rc"] == 0 for run in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
