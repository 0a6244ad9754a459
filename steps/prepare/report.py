"""The prepare step's readable summary of report.json, with a sample of examples to review."""
from __future__ import annotations

from typing import Any

from prepare.profile import absent_text

PREVIEW_CHARS = 90


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


def _replay_line(replay: dict[str, Any]) -> str:
    if not any(replay.values()):
        return "  replay: none"
    return (f"  replay (fraction {replay['fraction']}): used {replay['used']} of {replay['available']} available | "
            f"sampled {replay['sampled']} | superseded {replay['superseded']} | quarantined {replay['quarantined']}")


def _holdout_line(holdout: dict[str, Any]) -> str:
    held, recall = holdout["phrasings_held_out"], holdout["recall"]
    return (f"  holdout ({holdout['mode']}): {holdout['facts']} facts, {holdout['facts_with_several_phrasings']} with "
            f"several phrasings | held out: validation {held['validation']}, test {held['test']} | re-asked (recall): "
            f"validation {recall['validation']}, test {recall['test']} | facts withheld {holdout['facts_withheld']}")


def _contradictions_line(found: dict[str, Any]) -> str:
    verdict = ("BLOCKED (--allow-changes to accept)" if found["blocked"] else
               "allowed (--allow-changes)" if found["over_limit"] else "within the limit")
    return (f"  changed answers: {found['contradicted']} of the previous version's {found['previous_examples']} "
            f"examples ({found['share']:.1%}, limit {found['max_changed_fraction']:.0%}): {verdict}")


def _comparison_lines(report: dict[str, Any]) -> list[str]:
    comparison, retrain = report["comparison"], report["retrain"]
    lines = []
    if comparison.get("previous_data_version"):
        examples = comparison["examples"]
        lines.append(f"  vs previous data version {comparison['previous_data_version'][:16]}: new {examples['new']} | "
                     f"changed {examples['changed']} | unchanged {examples['unchanged']} | "
                     f"{absent_text(examples, comparison['removed_share'])}")
        drift = comparison["shift"]
        lines.append(f"  shift (JS divergence): prompt length {drift['prompt_length']:.3f} | completion length "
                     f"{drift['completion_length']:.3f} | vocabulary {drift['vocabulary']:.3f} | topics "
                     f"{drift['topics']:.3f}" + (f" | new topics {', '.join(drift['new_topics'])}"
                                                  if drift["new_topics"] else ""))
    lines.append(f"  {'RETRAIN' if retrain['recommended'] else 'SKIP'}: {retrain['reason']}")
    return lines


def summary(report: dict[str, Any], seconds: float | None = None) -> str:
    """A few readable lines about a report (and the run's speed when `seconds` is given)."""
    rows, splits, parameters = report["rows"], report["splits"], report["parameters"]
    reasons = ", ".join(f"{reason} {count}" for reason, count in report["quarantine_reasons"].items()) or "none"
    speed = f" in {seconds:.1f}s ({rows['input'] / max(seconds, 1e-9):,.0f} rows/s)" if seconds else ""
    pii = report["pii"]
    found = ", ".join(f"{kind} {count}" for kind, count in pii["found"].items()) or "none found"
    tokens = report["tokens"]
    lines = [
        f"prepare: {rows['input']} rows from {len(report['files'])} file(s){speed}",
        f"  kept {rows['kept']} | duplicates {rows['duplicates']} | quarantined {rows['quarantined']} ({reasons})",
        f"  duplicates: exact {report['duplicates']['exact']}, near {report['duplicates']['near']} "
        f"(threshold {parameters['near_duplicate_threshold']})",
        f"  PII ({pii['mode']}): {found}" + (f" in {pii['rows']} row(s)" if pii["rows"] else ""),
        f"  tokens: limit {tokens['max_tokens']}, {tokens['counted']} example(s) tokenized ({tokens['counter']})",
        f"  split (seed {parameters['seed']}, validation fraction {parameters['validation_fraction']}, test fraction "
        f"{parameters['test_fraction']}): train {splits['train']}, validation {splits['validation']}, "
        f"test {splits['test']}",
        _holdout_line(report["holdout"]),
        _replay_line(report["replay"]),
        *([_contradictions_line(report["contradictions"])] if report.get("contradictions") else []),
        f"  data version {report['data_version']}",
        *_comparison_lines(report),
    ]
    if report["sample"]:
        lines.append("  sample for review:")
        lines += [f"    [{item['source']}] {_short(item['prompt'])} → {_short(item['completion'])}"
                  for item in report["sample"]]
    return "\n".join(lines)
