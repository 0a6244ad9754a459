"""Evaluate step: the candidate model against the previous version on held-out data and benchmark suites.

For each model (candidate, then baseline, one in memory at a time): completion-only validation
loss on validation/*.jsonl, every requested suite (built-in, custom, lm-eval) and the retention
check (known items of the previous version's knowledge inventory, re-asked: evaluate.retention),
with batched, length-sorted scoring. Writes evaluation.json (metrics with value, baseline, delta,
regression; suites; inventory; forgetting; lineage; gate), cases.jsonl (every case, both answers)
and report.html, prints a table, and writes this version's knowledge inventory (the previous one
merged with this version's training examples, with the candidate's verdicts) for the register step.
"""
from evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
