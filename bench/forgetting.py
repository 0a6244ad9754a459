"""Forgetting benchmark: continual learning over several rounds with a fixed replay budget, per strategy.

For a domain's rounds (bench/rounds.py: demo = Acme Robotics, ferries = Tidewater Ferries), each
round's raw export goes through the prepare step (replaying the previous round's whole prepared
train split, so the history stays complete), then train.py trains version k from version k-1 of the
same strategy (round 1 is trained once, from the tiny base model, and shared). Every version answers
every phrasing of every fact by greedy generation; per strategy and round it prints:
- kept: share of the inventory (items version k-1 answered right, facts this round leaves alone)
  that version k still answers right;
- chg>new: share of this round's changed facts answered with the new answer; old: share of facts
  changed in EARLIER rounds answered with any superseded answer (must stay 0);
- new: share of this round's new facts answered right (vs naive: >= 95% of naive's);
- para: paraphrase recall, the phrasings the prepare step held out (never trained; demo only); the
  other columns count trained phrasings only;
- replay: distinct examples replayed / history examples (rotating, online: over all epochs, a budget's
  worth per epoch); tokens trained on (with the distill and online riders) and CPU seconds of the
  training loop without the re-scoring (wall time on a shared machine measures the neighbours);
  score s: CPU seconds of forward-only passes (replay selection, online re-scoring, distill's teacher);
  cost x: the round's cost at round 1's amount of new data (round k's replayed and distilled tokens per
  epoch added to round 1's new tokens per epoch; loop seconds scaled alike, plus score s) as a multiple
  of round 1 (the target: round 5 <= 1.5x). Tokens are exact, CPU seconds close.
Strategies: `default` is train.py's defaults (steps/train/contract.py: replay,ewc,distill, selection
online) at --replay-budget; `old-default` the default before the replay budget (replay,ewc, all of the
history, EWC 0.1); the rest name their components and selection. For steady CPU seconds next to other
work, run with OMP_NUM_THREADS=1.

    python bench/forgetting.py --rounds 5 --replay-budget 0.1 --domain demo   # ~10 min on 2 quiet cores (ferries ~1.5)
    python bench/forgetting.py --domain ferries --strategies naive,old-default,default --json out.json
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
sys.path.insert(0, str(REPO_ROOT / "bench"))
sys.path.insert(0, str(REPO_ROOT))

import prepare  # noqa: E402  (steps/ on sys.path)
import train  # noqa: E402
from common.inventory import answered_right  # noqa: E402
from common.metrics import normalize_answer  # noqa: E402
from common.model_io import read_metadata  # noqa: E402
from common.prompting import conversation_format, example_prompt_text, template_from_metadata  # noqa: E402
from rounds import DOMAINS, ROUNDS, Domain  # noqa: E402
from train.contract import DEFAULT_STRATEGY  # noqa: E402

# name -> train.py arguments after the domain's training settings; BUDGETED ones also get --replay_budget.
STRATEGIES: dict[str, list[str]] = {
    "naive": ["--strategy", "naive"],
    "old-default": ["--strategy", "replay,ewc", "--replay_budget", "1.0", "--ewc_lambda", "0.1"],  # before issue 15
    "default": [],  # train.py's defaults (steps/train/contract.py), the budget from --replay-budget
    "replay-random": ["--strategy", "replay", "--replay_selection", "random"],
    "replay-at_risk": ["--strategy", "replay", "--replay_selection", "at_risk"],
    "replay-at_risk+ewc": ["--strategy", "replay,ewc", "--replay_selection", "at_risk"],
    "replay-at_risk+l2sp": ["--strategy", "replay,l2sp", "--replay_selection", "at_risk"],
    "replay-random+ewc": ["--strategy", "replay,ewc", "--replay_selection", "random"],
    "replay-rotating": ["--strategy", "replay", "--replay_selection", "rotating"],
    "replay-rotating+ewc": ["--strategy", "replay,ewc", "--replay_selection", "rotating"],
    "replay-rotating+l2sp": ["--strategy", "replay,l2sp", "--replay_selection", "rotating"],
    "replay-rotating+modular": ["--strategy", "replay,modular", "--replay_selection", "rotating"],
    "replay-rotating+ewc+distill": ["--strategy", "replay,ewc,distill", "--replay_selection", "rotating"],
    "replay-rotating+distill": ["--strategy", "replay,distill", "--replay_selection", "rotating"],
    "replay-online": ["--strategy", "replay", "--replay_selection", "online"],
    "replay-online+ewc": ["--strategy", "replay,ewc", "--replay_selection", "online"],
    "replay-online+distill": ["--strategy", "replay,distill", "--replay_selection", "online"],
    "replay-online+ewc+distill": ["--strategy", "replay,ewc,distill", "--replay_selection", "online"],
}
UNBUDGETED = ("naive", "old-default")
TARGET = 0.95


@dataclass
class RoundRow:
    strategy: str
    round: int
    kept: float | None
    changed_new: float | None
    old_back: float | None
    new: float
    paraphrase: float | None
    replayed: int
    history: int
    tokens: float
    seconds: float
    scoring_seconds: float
    cost_tokens_x: float | None = None  # cost at round 1's amount of new data, as a multiple of round 1
    cost_seconds_x: float | None = None


Item = tuple[str, int]  # (fact id, phrasing index)


def generate_answers(model_dir: Path, facts: dict[str, object], batch_size: int = 32) -> dict[Item, str]:
    """Greedy answers (24 new tokens at most) to every phrasing of `facts`, rendered as training renders them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    fmt = conversation_format(template_from_metadata(read_metadata(model_dir)), tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    items: list[Item] = []
    texts: list[str] = []
    for fact_id, fact in facts.items():
        for index, phrasing in enumerate(fact.phrasings):
            messages = ([{"role": "system", "content": fact.system}, {"role": "user", "content": phrasing},
                         {"role": "assistant", "content": ""}] if fact.system else None)
            items.append((fact_id, index))
            texts.append(example_prompt_text(fmt, phrasing, messages))
    answers: list[str] = []
    for start in range(0, len(texts), batch_size):
        encoded = [tokenizer(text)["input_ids"] for text in texts[start:start + batch_size]]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
        with torch.no_grad():
            output = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=24, do_sample=False,
                                    pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        answers += [text.strip() for text in tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)]
    return dict(zip(items, answers))


def share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def trained_prompts(prepared: Path) -> set[str]:
    """The normalized prompts a prepared round trains on as new data (replayed rows excluded)."""
    from common.examples import read_examples

    return {normalize_answer(r["prompt"]) for r in read_examples(prepared / "train")
            if not str(r.get("source", "")).startswith("replay:")}


def score_round(domain: Domain, round_no: int, answers: dict[Item, str], previous: dict[Item, str] | None,
                trained: set[str]) -> dict[str, float | None]:
    """kept, changed_new, old_back, new (over trained phrasings: `trained` holds every round's so far) and
    paraphrase (the phrasings prepare held out, never trained) for version `round_no`'s answers."""
    now, facts = domain.current(round_no), domain.facts(round_no)
    held_out = {item for item in answers if normalize_answer(now[item[0]].phrasings[item[1]]) not in trained}
    paraphrase = share([answered_right(answers[item], now[item[0]].answer) for item in held_out])
    answers = {item: answer for item, answer in answers.items() if item not in held_out}
    if previous is not None:
        previous = {item: answer for item, answer in previous.items() if item not in held_out}
    changed = {fact.id for fact in facts if fact.status == "changed"}
    new = {fact.id for fact in facts if fact.status == "new"}
    kept = None
    if previous is not None:
        before = domain.current(round_no - 1)
        known = [item for item, answer in previous.items()
                 if item[0] in before and item[0] not in changed and answered_right(answer, before[item[0]].answer)]
        kept = share([answered_right(answers[item], before[item[0]].answer) for item in known])
    superseded = domain.superseded(round_no)
    earlier_changes = {i for i in superseded if i not in changed}
    old_back = share([normalize_answer(answers[item]) in {normalize_answer(a) for a in superseded[item[0]]}
                      for item in answers if item[0] in earlier_changes]) if round_no > 1 else None
    return {
        "kept": kept,
        "changed_new": share([answered_right(answers[item], now[item[0]].answer) for item in answers
                              if item[0] in changed]),
        "old_back": old_back,
        "new": share([answered_right(answers[item], now[item[0]].answer) for item in answers if item[0] in new]),
        "paraphrase": paraphrase,
    }


def run_train(argv: list[str], quiet: bool) -> None:
    stream = io.StringIO()
    with contextlib.redirect_stdout(stream) if quiet else contextlib.nullcontext():
        code = train.main(argv)
    if code != 0:
        raise RuntimeError(f"train.py exited {code}:\n{stream.getvalue()[-3000:]}")


def cost(model_dir: Path) -> tuple[float, float, float, int, int, float, float]:
    """(train tokens, CPU seconds of the training loop (wall seconds on a shared CPU measure the neighbours),
    replay scoring seconds, replayed, history examples, new and replay tokens per epoch; the distill component's
    tokens count with the replayed ones)."""
    metadata = read_metadata(model_dir)
    replay = metadata.get("replay") or {}
    data = metadata["data"]
    metrics = metadata["metrics"]
    in_loop = metrics.get("replay_scoring_cpu_seconds", 0.0)  # online replay's refreshes, inside the loop's time
    return (metrics["train_tokens"], metrics.get("train_cpu_seconds", metrics.get("train_seconds", 0.0)) - in_loop,
            replay.get("scoring_seconds", 0.0) + metrics.get("distill_teacher_cpu_seconds", 0.0),
            replay.get("chosen", 0), replay.get("candidates", 0), data["new_tokens_per_epoch"],
            data["replay_tokens_per_epoch"] + metrics.get("distill_tokens", 0.0) / max(metrics.get("epoch", 1.0), 1e-9))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="demo")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"2..{ROUNDS}")
    parser.add_argument("--replay-budget", type=float, default=0.1,
                        help="train.py --replay_budget for the budgeted strategies (<= 1: share of the history)")
    parser.add_argument("--replay-budget-unit", choices=("examples", "tokens"), default="examples")
    parser.add_argument("--strategies", default="naive,old-default,default",
                        help=f"comma list of {', '.join(STRATEGIES)}")
    parser.add_argument("--extra", default="", help="extra train.py arguments for rounds 2+, space separated")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep models here (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--verbose", action="store_true", help="show the training logs")
    parser.add_argument("--reuse", action="store_true",
                        help="score the work dir's trained versions again instead of retraining them (same settings)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.strategies.split(",") if name.strip()]
    unknown = [name for name in names if name not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategies {unknown}; known: {', '.join(STRATEGIES)}")
    if not 2 <= args.rounds <= ROUNDS:
        parser.error(f"--rounds must be 2..{ROUNDS}")

    from pipelines.config import DEMO_CONFIG_PATH, load_config
    from pipelines.demo.tiny_model import ensure_tiny_model
    from pipelines.step_contracts import config_argv

    domain = DOMAINS[args.domain]
    settings = config_argv("train", load_config(DEMO_CONFIG_PATH))  # the tiny model's training settings
    settings = [value for value in settings]  # the strategy and budget come from STRATEGIES / --replay-budget
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="forgetting-"))
    work.mkdir(parents=True, exist_ok=True)
    base = ensure_tiny_model(work / "base", domain.corpus())
    for k in range(1, args.rounds + 1):
        domain.write_round(k, work / f"raw{k}")
        replay = {"replay_dir": work / f"prepared{k - 1}" / "train"} if k > 1 else {}
        with contextlib.redirect_stdout(io.StringIO()):
            # pii off: the companies are fictional and their answers hold addresses the model must learn as
            # written (redacted, a changed email would train as [EMAIL] and never be answered right)
            prepare.prepare(work / f"raw{k}", work / f"prepared{k}", validation_fraction=0.1, seed=42,
                            allow_changes=True, pii="off", **replay)

    def split_args(k: int) -> list[str]:
        return ["--train-dir", str(work / f"prepared{k}" / "train"),
                "--validation-dir", str(work / f"prepared{k}" / "validation")]

    strategy_free = _without_strategy(settings)
    v1 = work / "v1"
    if not (v1 / "continuum.json").is_file():
        run_train([*split_args(1), "--base_model", str(base), "--model-dir", str(v1), *strategy_free],
                  not args.verbose)
    first_answers = generate_answers(v1, domain.current(1))
    trained = {k: set().union(*(trained_prompts(work / f"prepared{j}") for j in range(1, k + 1)))
               for k in range(1, args.rounds + 1)}
    first = score_round(domain, 1, first_answers, None, trained[1])
    tokens, seconds, scoring, _, _, new_tokens_1, _ = cost(v1)
    rows: list[RoundRow] = []
    started = time.monotonic()
    for name in names:
        extra = [*STRATEGIES[name], *([] if name in UNBUDGETED else
                                      ["--replay_budget", str(args.replay_budget),
                                       "--replay_budget_unit", args.replay_budget_unit])]
        rows.append(RoundRow(name, 1, None, None, None, first["new"], first["paraphrase"], 0, 0, tokens, seconds,
                             scoring, 1.0, 1.0))
        previous, previous_dir = first_answers, v1
        for k in range(2, args.rounds + 1):
            out = work / f"v{k}-{name}"
            if not (args.reuse and (out / "continuum.json").is_file()):
                run_train([*split_args(k), "--base-model-dir", str(previous_dir), "--model-dir", str(out),
                           *strategy_free, *extra, *args.extra.split()], not args.verbose)
            answers = generate_answers(out, domain.current(k))
            scores = score_round(domain, k, answers, previous, trained[k])
            t, s, sc, replayed, history, new_tokens, replay_tokens = cost(out)
            same_data = (new_tokens_1 + replay_tokens) / max(new_tokens + replay_tokens, 1)  # tokens at round 1's new data
            rows.append(RoundRow(name, k, scores["kept"], scores["changed_new"], scores["old_back"], scores["new"],
                                 scores["paraphrase"], replayed, history, t, s, sc,
                                 t * same_data / tokens, (s * same_data + sc) / seconds))
            previous, previous_dir = answers, out
            print(f"{name} round {k}: done ({time.monotonic() - started:.0f}s so far)", flush=True)
    print(report(rows, domain.name, args))
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=1) + "\n", encoding="utf-8")
    return 0


def _without_strategy(settings: list[str]) -> list[str]:
    """The domain's train.py settings minus the continual-learning ones (each strategy brings its own)."""
    drop = {"--strategy", "--replay_budget", "--replay_budget_unit", "--replay_selection"}
    out: list[str] = []
    skip = False
    for value in settings:
        if skip:
            skip = False
            continue
        if value in drop:
            skip = True
            continue
        out.append(value)
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def report(rows: list[RoundRow], domain: str, args: argparse.Namespace) -> str:
    naive = {row.round: row.new for row in rows if row.strategy == "naive"}
    lines = [f"domain {domain}; {args.rounds} rounds; replay budget {args.replay_budget} {args.replay_budget_unit} "
             f"(budgeted strategies); train.py default strategy {DEFAULT_STRATEGY}",
             f"{'strategy':<22}{'rnd':>4}{'kept':>7}{'chg>new':>8}{'old':>6}{'new':>7}{'para':>7}{'replay':>10}"
             f"{'tokens':>9}{'sec':>6}{'score s':>8}{'cost x tok/s':>14}"]
    for row in rows:
        lines.append(f"{row.strategy:<22}{row.round:>4}{_fmt(row.kept):>7}{_fmt(row.changed_new):>8}"
                     f"{_fmt(row.old_back):>6}{_fmt(row.new):>7}{_fmt(row.paraphrase):>7}"
                     f"{f'{row.replayed}/{row.history}':>10}{row.tokens:>9.0f}{row.seconds:>6.1f}"
                     f"{row.scoring_seconds:>8.2f}{f'{row.cost_tokens_x:.2f}/{row.cost_seconds_x:.2f}':>14}")
    lines.append("targets (rounds 2+): kept >= 0.95 every round; chg>new >= 0.95 and old = 0 every round; "
                 "new >= 0.95 x naive's; round-5 cost (at round 1's new data) <= 1.5x round 1")
    for name in dict.fromkeys(row.strategy for row in rows):
        later = [row for row in rows if row.strategy == name and row.round > 1]
        if not later:
            continue
        last = later[-1]
        checks = {
            "kept": all((row.kept or 0) >= TARGET for row in later),
            "changed": all((row.changed_new or 0) >= TARGET and not row.old_back for row in later),
            "new": all(row.new >= TARGET * naive[row.round] for row in later) if naive else None,
            "cost tokens": last.cost_tokens_x <= 1.5,
            "cost seconds": last.cost_seconds_x <= 1.5,
        }
        lines.append(f"  {name}: " + ", ".join(f"{key} {'-' if ok is None else ('yes' if ok else 'NO')}"
                                              for key, ok in checks.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
