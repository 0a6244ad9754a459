"""Forgetting benchmark: round-1 retention and round-2 learning per continual-learning strategy.

On the demo's two rounds of sample data with the tiny model: train version 1 on round 1, then for
each strategy train version 2 from version 1 on round 2's prepared data (new data + the replayed
round-1 split, as the pipeline prepares it; strategies without `replay` leave the replayed examples
out, so `naive` is plain fine-tuning on the new data). Scores, by greedy generation:
- round-1 retained: the company_facts suite (round-1 facts that round 2 leaves unchanged);
- round-2 new: every new or changed round-2 fact, asked in its canonical phrasing.
Target (issue): the default strategy keeps >= 95% of version 1's round-1 accuracy while reaching
>= 95% of naive fine-tuning's round-2 accuracy.

    python bench/forgetting.py                       # all strategies, about 4 minutes on 2 CPU cores
    python bench/forgetting.py --strategies naive,replay --json out.json
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "steps"))

import prepare  # noqa: E402  (steps/ on sys.path)
import train  # noqa: E402
from common.benchmarks import load_suites  # noqa: E402
from common.metrics import score  # noqa: E402
from common.model_io import read_metadata  # noqa: E402
from common.prompting import format_prompt, template_from_metadata  # noqa: E402
from train.contract import DEFAULT_STRATEGY  # noqa: E402

# name -> extra train.py arguments. "default" is what train.py does without --strategy.
STRATEGIES: dict[str, list[str]] = {
    "naive": ["--strategy", "naive"],
    "replay": ["--strategy", "replay"],
    "ewc": ["--strategy", "ewc"],
    "l2sp": ["--strategy", "l2sp"],
    "modular": ["--strategy", "modular"],
    "replay+ewc": ["--strategy", "replay,ewc"],
    "replay+l2sp": ["--strategy", "replay,l2sp"],
    "replay+modular": ["--strategy", "replay,modular"],
    "replay(w=0.5)": ["--strategy", "replay", "--replay_weight", "0.5"],
}


@dataclass
class Scores:
    strategy: str
    round1_exact: float
    round1_f1: float
    round2_exact: float
    round2_f1: float
    train_seconds: float


def generate_answers(model_dir: Path, questions: list[str], batch_size: int = 16) -> list[str]:
    """Greedy answers (24 new tokens at most) to `questions` in the model's prompt template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    template = template_from_metadata(read_metadata(model_dir))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    for start in range(0, len(questions), batch_size):
        encoded = [tokenizer(format_prompt(template, q))["input_ids"] for q in questions[start : start + batch_size]]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
        with torch.no_grad():
            output = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=24, do_sample=False,
                                    pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        answers += [text.strip() for text in tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)]
    return answers


def measure(model_dir: Path, strategy: str, seconds: float, round1: tuple[list[str], list[str]],
            round2: tuple[list[str], list[str]]) -> Scores:
    first = generate_answers(model_dir, round1[0])
    second = generate_answers(model_dir, round2[0])
    return Scores(strategy, score("exact_match", first, round1[1]), score("token_f1", first, round1[1]),
                  score("exact_match", second, round2[1]), score("token_f1", second, round2[1]), seconds)


def run_train(argv: list[str], quiet: bool) -> float:
    started = time.monotonic()
    stream = io.StringIO()
    with contextlib.redirect_stdout(stream) if quiet else contextlib.nullcontext():
        code = train.main(argv)
    if code != 0:
        raise RuntimeError(f"train.py exited {code}:\n{stream.getvalue()[-3000:]}")
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma list of {', '.join(STRATEGIES)}")
    parser.add_argument("--replay-fraction", type=float, default=1.0, help="the prepare step's ReplayFraction")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep models here (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--extra", default="", help="extra train.py arguments for round 2, space separated")
    parser.add_argument("--verbose", action="store_true", help="show the training logs")
    parser.add_argument("--reuse-version-one", action="store_true",
                        help="reuse the work dir's version 1 when it is there (parameter sweeps)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.strategies.split(",") if name.strip()]
    unknown = [name for name in names if name not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategies {unknown}; known: {', '.join(STRATEGIES)}")

    from pipelines.config import DEMO_CONFIG_PATH, load_config
    from pipelines.demo.sample_data import corpus_texts, facts, write_round
    from pipelines.demo.tiny_model import ensure_tiny_model

    from pipelines.step_contracts import config_argv

    demo_args = config_argv("train", load_config(DEMO_CONFIG_PATH))  # the demo's training settings, as the pipeline
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="forgetting-"))
    work.mkdir(parents=True, exist_ok=True)
    base = ensure_tiny_model(work / "base", corpus_texts())
    for round_no in (1, 2):
        write_round(round_no, work / f"raw{round_no}")
    prepare.prepare(work / "raw1", work / "prepared1", validation_fraction=0.1, seed=42)
    prepare.prepare(work / "raw2", work / "prepared2", replay_dir=work / "prepared1" / "train",
                    validation_fraction=0.1, seed=42, replay_fraction=args.replay_fraction)
    suite = load_suites(REPO_ROOT / "benchmarks", ["company_facts"])[0]
    round1 = ([suite.render_prompt(case) for case in suite.cases], [case.target for case in suite.cases])
    new_facts = [fact for fact in facts(2) if fact.status in ("new", "changed")]
    round2 = ([fact.question for fact in new_facts], [fact.answer for fact in new_facts])

    def split_args(prepared: Path) -> list[str]:
        return ["--train-dir", str(prepared / "train"), "--validation-dir", str(prepared / "validation")]

    v1 = work / "v1"
    seconds = 0.0
    if not (args.reuse_version_one and (v1 / "continuum.json").is_file()):
        seconds = run_train([*split_args(work / "prepared1"), "--base_model", str(base), "--model-dir", str(v1),
                             *demo_args], not args.verbose)
    results = [measure(v1, "version 1 (round 1 only)", seconds, round1, round2)]
    print(f"version 1: round-1 exact {results[0].round1_exact:.3f}, trained in {seconds:.1f}s", flush=True)
    for name in names:
        out = work / f"v2-{name}"
        seconds = run_train([*split_args(work / "prepared2"), "--base-model-dir", str(v1), "--model-dir", str(out),
                             *demo_args, *STRATEGIES[name], *args.extra.split()], not args.verbose)
        results.append(measure(out, name, seconds, round1, round2))
        print(f"{name}: done in {seconds:.1f}s", flush=True)
    print(report(results, args.replay_fraction))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n", encoding="utf-8")
    return 0


def report(results: list[Scores], replay_fraction: float) -> str:
    version_one = results[0]
    naive = next((r for r in results if r.strategy == "naive"), None)
    lines = [f"replay fraction {replay_fraction}; round-1 retained: the company_facts suite; exact match (token F1)",
             f"{'strategy':<26}{'round-1 retained':>20}{'vs v1':>8}{'round-2 new':>18}{'vs naive':>10}{'train s':>9}  target"]
    for r in results:
        kept = r.round1_exact / version_one.round1_exact if version_one.round1_exact else float("nan")
        learned = r.round2_exact / naive.round2_exact if naive and naive.round2_exact else float("nan")
        target = "yes" if kept >= 0.95 and learned >= 0.95 else "no"
        if r is version_one or naive is None:
            target = "-"
        lines.append(f"{r.strategy:<26}{r.round1_exact:>11.3f} ({r.round1_f1:.3f}){kept:>8.2f}"
                     f"{r.round2_exact:>9.3f} ({r.round2_f1:.3f}){learned:>10.2f}{r.train_seconds:>9.1f}  {target}")
    lines.append(f"train.py's default strategy: {DEFAULT_STRATEGY}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
