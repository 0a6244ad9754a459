"""Evaluation throughput: our batched evaluator vs a per-example loop, same model, same cases (target >= 10x).

The per-example loop is the pattern the seed documents use: one `generate` call per QA case,
one forward pass per option of a multiple-choice or classification case, one per text for
perplexity. Ours is `evaluate.tasks.run_suite`: length-sorted batches, greedy decoding with a
KV cache where rows that stop leave the batch, the suite's shared prompt opening run once, all
options of a question packed into one sequence. Both produce the same answers (checked: exit code 1
when any answer differs). Ours
also computes the suite's metrics; the loop does not (its time is answers only).

Each round runs the loop, then ours; `speed-up` is the ratio of median wall times, `cpu speed-up`
that of the least CPU times of this process (steadier when other work shares the machine).

    python bench/eval_throughput.py                      # tiny demo model, built suites x 4
    python bench/eval_throughput.py --model DIR --repeat 8 --max-new-tokens 32 --rounds 5
    python bench/eval_throughput.py --model model.tar.gz --suites company_facts,company_quiz
    python bench/eval_throughput.py --shape qwen2.5-0.5b --json out/eval.json   # random-init Qwen2.5 shape
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "steps"))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from common.benchmarks import BenchmarkSuite, load_suite  # noqa: E402
from evaluate.model import LoadedModel, load_model  # noqa: E402
from evaluate.tasks import BatchSettings, run_suite  # noqa: E402
from common.prompting import format_prompt  # noqa: E402
from shapes import finish  # noqa: E402

SUITES = ("company_facts", "support_answers", "company_quiz", "support_routing", "policy_perplexity")


def tiny_model(work: Path) -> Path:
    sys.path.insert(0, str(REPO_ROOT))
    from pipelines.demo.sample_data import corpus_texts
    from pipelines.demo.tiny_model import ensure_tiny_model

    return ensure_tiny_model(work / "tiny-base", corpus_texts())


def repeated(suite: BenchmarkSuite, times: int) -> BenchmarkSuite:
    cases = tuple(replace(case, id=f"{case.id}#{n}") for n in range(times) for case in suite.cases)
    return replace(suite, cases=cases)


def loop_generate(loaded: LoadedModel, suite: BenchmarkSuite, max_new_tokens: int) -> list[str]:
    """One generate call per case."""
    import torch

    outputs = []
    for case in suite.cases:
        inputs = loaded.tokenizer(format_prompt(loaded.template, suite.render_prompt(case)), return_tensors="pt")
        with torch.no_grad():
            generated = loaded.model.generate(**inputs, max_new_tokens=suite.spec.max_new_tokens or max_new_tokens,
                                              do_sample=False, pad_token_id=loaded.pad_id)
        outputs.append(loaded.tokenizer.decode(generated[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return outputs


def _sequence_logprob(loaded: LoadedModel, context: list[int], continuation: list[int]) -> float:
    import torch

    with torch.no_grad():
        logprobs = loaded.model(torch.tensor([context + continuation])).logits.log_softmax(-1)[0]
    return sum(float(logprobs[len(context) - 1 + k, token]) for k, token in enumerate(continuation))


def loop_choices(loaded: LoadedModel, suite: BenchmarkSuite, _: int) -> list[str]:
    """One forward pass per option of every case; the likeliest option is the answer."""
    tokenizer, eos = loaded.tokenizer, loaded.tokenizer.eos_token_id
    answers = []
    for case in suite.cases:
        context = tokenizer(format_prompt(loaded.template, suite.render_prompt(case))).input_ids
        scores = [_sequence_logprob(loaded, context, tokenizer(choice, add_special_tokens=False).input_ids + [eos])
                  for choice in case.choices]
        answers.append(case.choices[max(range(len(scores)), key=scores.__getitem__)])
    return answers


def loop_perplexity(loaded: LoadedModel, suite: BenchmarkSuite, _: int) -> list[str]:
    """One forward pass per text."""
    tokenizer, eos = loaded.tokenizer, loaded.tokenizer.eos_token_id
    losses = []
    for case in suite.cases:
        if case.prompt:
            context = tokenizer(format_prompt(loaded.template, suite.render_prompt(case))).input_ids
            continuation = tokenizer(case.target, add_special_tokens=False).input_ids + [eos]
        else:
            context, continuation = [loaded.start_id], tokenizer(case.target, add_special_tokens=False).input_ids
        losses.append(f"{-_sequence_logprob(loaded, context, continuation) / len(continuation):.3f}")
    return losses


LOOPS: dict[str, Callable[[LoadedModel, BenchmarkSuite, int], list[str]]] = {
    "qa": loop_generate, "generation": loop_generate, "multiple_choice": loop_choices,
    "classification": loop_choices, "perplexity": loop_perplexity,
}


def timed_pair(loop: Callable[[], Any], ours: Callable[[], Any], rounds: int) -> tuple[Any, Any, dict[str, float]]:
    """Both results, the median wall seconds and the least CPU seconds of each side over `rounds` rounds.

    The sides alternate within every round, so a busy spell on a shared machine hits both. The
    least CPU time of this process is the steadiest estimate when other work competes for the cores.
    """
    samples: dict[str, list[float]] = {"loop": [], "ours": [], "loop_cpu": [], "ours_cpu": []}
    results: dict[str, Any] = {}
    for _ in range(rounds):
        for side, function in (("loop", loop), ("ours", ours)):
            wall, cpu = time.perf_counter(), time.process_time()
            results[side] = function()
            samples[side].append(time.perf_counter() - wall)
            samples[f"{side}_cpu"].append(time.process_time() - cpu)
    summary = {key: (min if key.endswith("_cpu") else statistics.median)(values) for key, values in samples.items()}
    return results["loop"], results["ours"], summary


def _load() -> str:
    """The 1-, 5- and 15-minute load averages (other work on a shared machine slows both sides)."""
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model dir or model.tar.gz (default: the tiny demo model)")
    parser.add_argument("--shape", help="instead of --model: a random-init model of this shape (bench/shapes.py)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    parser.add_argument("--repeat", type=int, default=4, help="each suite's cases this many times")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="time each side this many times")
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated built-in suites to run")
    args = parser.parse_args(argv)
    import torch

    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        if args.shape:
            from shapes import random_model_dir

            model_path = random_model_dir(args.shape, Path(tmp))
        else:
            model_path = args.model or tiny_model(Path(tmp))
        loaded = load_model(model_path, "candidate", max_seq_length=1024)
        settings = BatchSettings(args.max_new_tokens, args.batch_size)
        suites = [repeated(load_suite(REPO_ROOT / "benchmarks" / name), args.repeat) for name in args.suites.split(",")]
        run_suite(loaded, suites[0], settings)  # warm-up: first-call costs belong to neither side
        print(f"device {loaded.device}, torch threads {torch.get_num_threads()}, load average {_load()}, "
              f"model {model_path}, {args.rounds} rounds (median wall s; least CPU s)")
        print(f"{'suite':<18} {'task':<16} {'cases':>6} {'loop s':>8} {'ours s':>8} {'speed-up':>9} {'cpu speed-up':>13}"
              f"  same answers")
        totals = dict.fromkeys(("loop", "ours", "loop_cpu", "ours_cpu"), 0.0)
        cases = same_total = 0
        rows = []
        for suite in suites:
            theirs, run, seconds = timed_pair(lambda: LOOPS[suite.spec.task](loaded, suite, args.max_new_tokens),
                                              lambda: run_suite(loaded, suite, settings), args.rounds)
            mine = [o.prediction if suite.spec.task != "perplexity" else f"{o.scores['loss']:.3f}" for o in run.outcomes]
            same = sum(a == b for a, b in zip(theirs, mine))
            totals = {key: totals[key] + seconds[key] for key in totals}
            cases += len(mine)
            same_total += same
            rows.append({"suite": suite.name, "task": suite.spec.task, "cases": len(mine), "same_answers": same,
                         **{f"{key}_seconds": value for key, value in seconds.items()}})
            print(f"{suite.name:<18} {suite.spec.task:<16} {len(mine):>6} {seconds['loop']:>8.2f} {seconds['ours']:>8.2f} "
                  f"{seconds['loop'] / seconds['ours']:>8.1f}x {seconds['loop_cpu'] / seconds['ours_cpu']:>12.1f}x"
                  f"  {same}/{len(mine)}")
        print(f"{'all':<18} {'':<16} {cases:>6} {totals['loop']:>8.2f} {totals['ours']:>8.2f} "
              f"{totals['loop'] / totals['ours']:>8.1f}x {totals['loop_cpu'] / totals['ours_cpu']:>12.1f}x"
              f"  ({cases / totals['loop']:.0f} vs {cases / totals['ours']:.0f} cases/s; load average now {_load()})")
        if same_total != cases:
            print(f"FAILED: the batched evaluator's answers differ from the per-case loop's on {cases - same_total} "
                  f"of {cases} cases", file=sys.stderr)
        return finish({
            "model": str(args.shape or model_path), "device": str(loaded.device), "suites": rows, "cases": cases,
            "same_answers": same_total, "passed": same_total == cases, "speed_up": totals["loop"] / totals["ours"],
            "cpu_speed_up": totals["loop_cpu"] / totals["ours_cpu"],
            **{f"{key}_seconds": value for key, value in totals.items()}}, args.json)


if __name__ == "__main__":
    sys.exit(main())
