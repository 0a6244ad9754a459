"""The evaluation report: one self-contained HTML file (plots inlined as PNG) rendered from evaluation.json.

Reads top to bottom: the verdict, what changed per suite (plots), every metric, the cases that
got worse with both models' answers, what was forgotten and learned (the knowledge inventory's
forgotten items, its size and coverage), a few examples per suite, and where the models and the
data came from.
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common.bounds import worse_by

REPORT_FILE = "report.html"
CANDIDATE_COLOR, BASELINE_COLOR = "#2563eb", "#9ca3af"
GOOD, BAD = "#15803d", "#b91c1c"
LEGEND = {"loc": "center left", "bbox_to_anchor": (1.01, 0.5), "frameon": False}  # beside the plot, never on a bar
STYLE = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#111827;background:#f9fafb}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px} h2{margin-top:36px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.sub{color:#6b7280} .verdict{padding:14px 18px;border-radius:8px;margin:18px 0;color:#fff;font-weight:600}
.pass{background:#15803d} .fail{background:#b91c1c} .verdict ul{margin:6px 0 0;font-weight:400}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;min-width:170px}
.card b{display:block;font-size:22px} table{border-collapse:collapse;width:100%;background:#fff;margin:8px 0}
th,td{border:1px solid #e5e7eb;padding:5px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#f3f4f6} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.good{color:#15803d;font-weight:600} .bad{color:#b91c1c;font-weight:600} .muted{color:#6b7280}
img{max-width:100%;background:#fff;border:1px solid #e5e7eb;border-radius:8px;margin:8px 0}
pre{background:#fff;border:1px solid #e5e7eb;padding:8px;overflow-x:auto;font-size:13px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _td(value: Any, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(value)}</td>' if cls else f"<td>{_e(value)}</td>"


def _delta_cell(entry: dict[str, Any]) -> str:
    delta = entry.get("delta")
    if delta is None:
        return _td("–", "num")
    better = worse_by(entry["value"], entry["baseline"], entry["higher_is_better"]) < 0
    cls = "num good" if better and abs(delta) > 1e-12 else "num bad" if abs(delta) > 1e-12 else "num muted"
    return _td(f"{delta:+.4f}", cls)


# ---------------------------------------------------------------- plots


def _png(draw: Callable[[Any], None], height: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, height), dpi=100)
    try:
        draw(axes)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _paired_bars(axes: Any, labels: list[str], candidate: list[float], baseline: list[float | None], xlabel: str) -> None:
    positions = range(len(labels))
    axes.barh([p + 0.2 for p in positions], candidate, height=0.4, color=CANDIDATE_COLOR, label="candidate")
    if any(value is not None for value in baseline):
        axes.barh([p - 0.2 for p in positions], [v or 0.0 for v in baseline], height=0.4, color=BASELINE_COLOR,
                  label="previous")
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    axes.set_xlabel(xlabel)
    axes.legend(**LEGEND)
    axes.grid(axis="x", alpha=0.3)


def _score_plot(evaluation: dict[str, Any]) -> str | None:
    rows = [(name, section) for name, section in evaluation["suites"].items() if section["primary_metric"]]
    if not rows:
        return None
    labels = [f"{name} · {section['primary_metric']}" for name, section in rows]
    candidate = [section["metrics"]["candidate"][section["primary_metric"]] for _, section in rows]
    baseline = [(section["metrics"]["baseline"] or {}).get(section["primary_metric"]) for _, section in rows]
    return _png(lambda axes: _paired_bars(axes, labels, candidate, baseline, "primary metric (per suite)"),
                1.2 + 0.55 * len(rows))


def _flip_plot(evaluation: dict[str, Any]) -> str | None:
    by_suite = evaluation["forgetting"]["by_suite"]
    if not by_suite:
        return None
    names = list(by_suite)
    parts = [("kept", "#86efac"), ("learned", GOOD), ("forgotten", BAD), ("still_wrong", "#e5e7eb")]

    def draw(axes: Any) -> None:
        left = [0] * len(names)
        for key, color in parts:
            values = [by_suite[name][key] for name in names]
            axes.barh(names, values, left=left, color=color, label=key.replace("_", " "))
            left = [a + b for a, b in zip(left, values)]
        axes.invert_yaxis()
        axes.set_xlabel("cases (previous version → candidate)")
        axes.legend(**LEGEND)

    return _png(draw, 1.2 + 0.5 * len(names))


def _latency_plot(evaluation: dict[str, Any]) -> str | None:
    names = [name for name, section in evaluation["suites"].items() if section["latency_ms_per_example"]["candidate"]]
    if not names:
        return None
    candidate = [evaluation["suites"][n]["latency_ms_per_example"]["candidate"] for n in names]
    baseline = [evaluation["suites"][n]["latency_ms_per_example"]["baseline"] for n in names]
    return _png(lambda axes: _paired_bars(axes, names, candidate, baseline, "ms per example"), 1.2 + 0.5 * len(names))


def _plots(evaluation: dict[str, Any]) -> str:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return '<p class="bad">Plots omitted: matplotlib is not installed where this evaluation ran.</p>'
    figures = [
        ("Scores per suite", _score_plot(evaluation)),
        ("Right and wrong answers: what was kept, learned and forgotten", _flip_plot(evaluation)),
        ("Latency", _latency_plot(evaluation)),
    ]
    return "".join(f"<h3>{_e(title)}</h3><img alt='{_e(title)}' src='{src}'>" for title, src in figures if src)


# ---------------------------------------------------------------- sections


def _verdict(evaluation: dict[str, Any]) -> str:
    gate = evaluation["gate"]
    if gate["passed"]:
        return '<div class="verdict pass">Gate passed: ' + _e(gate["summary"]) + "</div>"
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in gate["reasons"])
    return f'<div class="verdict fail">Gate failed<ul>{reasons}</ul></div>'


def _cards(evaluation: dict[str, Any]) -> str:
    cards = []
    gate_metric = evaluation["gate"].get("metric")
    if gate_metric and gate_metric in evaluation["metrics"]:
        entry = evaluation["metrics"][gate_metric]
        delta = "" if entry["delta"] is None else f" ({entry['delta']:+.3f})"
        cards.append((gate_metric, f"{entry['value']:.3f}{delta}"))
    retention = (evaluation.get("inventory") or {}).get("retention")
    if retention:
        cards.append(("forgetting (known items)", f"{retention['forgetting']:.1%} ({retention['forgotten']}/{retention['known']})"))
    forgetting = evaluation["forgetting"]
    if forgetting["by_suite"]:
        cards.append(("answers forgotten / learned", f"{forgetting['forgotten']} / {forgetting['learned']}"))
    cards.append(("suites", str(len(evaluation["suites"]))))
    cards.append(("cases", str(sum(section["cases"] for section in evaluation["suites"].values()))))
    worst = max(evaluation["metrics"].items(), key=lambda item: item[1]["regression"] if "latency" not in item[0] else 0)
    if worst[1]["regression"] > 0 and "latency" not in worst[0]:
        cards.append(("largest regression", f"{worst[0]} −{worst[1]['regression']:.3f}"))
    return '<div class="cards">' + "".join(f'<div class="card">{_e(label)}<b>{_e(value)}</b></div>'
                                           for label, value in cards) + "</div>"


def _metrics_table(evaluation: dict[str, Any]) -> str:
    rows = []
    for name, entry in evaluation["metrics"].items():
        threshold = "–" if entry.get("threshold") is None else f"{entry['threshold']:g}"
        status = "" if entry.get("passed") is None else ("met" if entry["passed"] else "NOT MET")
        rows.append([_td(name), _td(_num(entry["value"]), "num"), _td(_num(entry["baseline"]), "num"),
                     _delta_cell(entry), _td("higher" if entry["higher_is_better"] else "lower"),
                     _td(f"{threshold} {status}".strip(), "bad" if entry.get("passed") is False else "")])
    return _table(["metric", "candidate", "previous", "delta", "better", "threshold"], rows)


def _regressions(evaluation: dict[str, Any]) -> str:
    parts = []
    for name, section in evaluation["suites"].items():
        cases = section["worst_regressions"]
        if not cases:
            continue
        rows = [[_td(case["id"]), _td(case["prompt"]), _td(case["target"]), _td(case["baseline"]),
                 _td(case["candidate"], "bad" if case["flipped"] else ""),
                 _td(f"{case['score']}: {case['baseline_score']:.3f} → {case['candidate_score']:.3f}", "num")]
                for case in cases]
        parts.append(f"<h3>{_e(name)}</h3>" + _table(["case", "prompt", "expected", "previous answer",
                                                       "candidate answer", "score"], rows))
    return "".join(parts) or '<p class="muted">No case got worse than with the previous version.</p>'


def _forgetting(evaluation: dict[str, Any]) -> str:
    forgetting = evaluation["forgetting"]
    parts = []
    if forgetting["by_suite"]:
        parts.append(f"<p>Across suites with right/wrong answers the candidate kept {forgetting['kept']}, "
                     f"learned {forgetting['learned']}, <b>forgot {forgetting['forgotten']}</b> and still misses "
                     f"{forgetting['still_wrong']} answers compared with the previous version.</p>")
        rows = [[_td(name), *(_td(counts[key], "num") for key in ("kept", "learned", "forgotten", "still_wrong"))]
                for name, counts in forgetting["by_suite"].items()]
        parts.append(_table(["suite", "kept", "learned", "forgotten", "still wrong"], rows))
    parts.append(_inventory(evaluation))
    return "".join(parts)


def _inventory(evaluation: dict[str, Any]) -> str:
    """The knowledge inventory: what the candidate forgot of the previous version's known items, and its coverage."""
    inventory = evaluation.get("inventory")
    if inventory is None:
        return '<p class="muted">No knowledge inventory was kept in this evaluation.</p>'
    parts, retention, previous = [], inventory["retention"], inventory["previous"]
    if retention is None:
        parts.append(f'<p class="muted">Nothing re-asked: the previous version\'s inventory holds {previous["items"]} '
                     f'items, {previous["known"]} of them known.</p>')
    else:
        bound = "" if retention["max_forgetting"] is None else f" (MaxForgetting {retention['max_forgetting']:g})"
        parts.append(f"<p>Knowledge inventory: {retention['asked']} of the {previous['known']} items the previous "
                     f"version knew were re-asked; it still answers {retention['known']} of them right "
                     f"({retention['lost_before']} were lost before this round). The candidate <b>forgot "
                     f"{retention['forgotten']}</b>: forgetting {retention['forgetting']:.1%}{_e(bound)}.</p>")
        listed = retention["forgotten_items"]
        if listed:
            rows = [[_td(item["data_version"][:12]), _td(item["prompt"]), _td(item["expected"]),
                     _td(item["candidate"], "bad"), _td(item["baseline"])] for item in listed]
            more = len(listed) < retention["forgotten"]
            parts.append("<h3>Forgotten items</h3>" + _table(
                ["data version", "prompt", "expected", "candidate answer", "previous answer"], rows)
                + (f'<p class="muted">{len(listed)} of {retention["forgotten"]} listed.</p>' if more else ""))
    after, merged = inventory["next"], inventory["merge"]
    parts.append(f"<p>This version's inventory: {after['items']} items from {after['data_versions']} data version(s) "
                 f"({merged['added']} new, {merged['superseded']} superseded by new answers); {after['checked']} "
                 f"checked, {after['known']} known; {inventory['coverage_checks']} items asked this round to grow "
                 "coverage.</p>")
    rows = [[_td(version[:16]), _td(counts["items"], "num"), _td(counts["checked"], "num"), _td(counts["known"], "num")]
            for version, counts in after["by_data_version"].items()]
    if rows:
        parts.append(_table(["data version", "items", "checked", "known"], rows))
    parts.append(f'<p class="muted">Known: {_e(after["known_rule"])}.</p>')
    return "".join(parts)


def _examples(evaluation: dict[str, Any]) -> str:
    parts = []
    for name, section in evaluation["suites"].items():
        rows = [[_td(ex["id"]), _td(ex["prompt"]), _td(ex["target"]), _td(ex["baseline"]), _td(ex["candidate"])]
                for ex in section["examples"]]
        meta = f"{section['task']} · version {section['version']} · {section['cases']} cases · {section['origin']}"
        truncated = (f' · <span class="bad">{section["truncated_cases"]} prompts cut to fit the context</span>'
                     if section["truncated_cases"] else "")
        parts.append(f"<h3>{_e(name)}</h3><p class='sub'>{_e(meta)}{truncated}</p>"
                     + _table(["case", "prompt", "expected", "previous answer", "candidate answer"], rows))
    return "".join(parts)


def _lineage(evaluation: dict[str, Any]) -> str:
    lineage = evaluation.get("lineage") or {}
    parts = []
    for title, key in (("Candidate model", "candidate"), ("Previous version", "baseline"), ("Data", "data")):
        value = lineage.get(key)
        if value:
            parts.append(f"<h3>{title}</h3><pre>{_e(json.dumps(value, indent=2, default=str))}</pre>")
    benchmarks = lineage.get("benchmarks") or {}
    if benchmarks:
        rows = [[_td(name), _td(info["task"]), _td(info["version"]), _td(info["cases"], "num"), _td(info["fingerprint"])]
                for name, info in benchmarks.items()]
        parts.append("<h3>Benchmarks</h3>" + _table(["suite", "task", "version", "cases", "fingerprint"], rows))
    return "".join(parts)


def _replay(evaluation: dict[str, Any]) -> str:
    """What the candidate's round replayed of the history, why, and what it cost (continuum.json's `replay`)."""
    candidate = (evaluation.get("lineage") or {}).get("candidate") or {}
    replay = candidate.get("replay")
    if not replay:
        return "<p class='sub'>Nothing replayed: no history (a first version) or no replay in the strategy.</p>"
    tokens = (candidate.get("data") or {}).get("replay_tokens_per_epoch")
    summary = (f"selection {replay.get('selection')}, budget {replay.get('budget')} {replay.get('unit')} "
               f"({replay.get('amount')} per epoch); {replay.get('chosen')} of {replay.get('candidates')} history "
               f"examples replayed")
    if tokens is not None:
        summary += f", {tokens:.0f} replayed tokens per epoch"
    if replay.get("scored_tokens"):
        summary += f"; {replay['scored_tokens']} tokens re-scored while training"
    summary += f"; scoring {replay.get('scoring_seconds', 0)} s"
    versions = replay.get("by_data_version") or {}
    version_rows = [[_td(name), _td(info.get("candidates"), "num"), _td(info.get("known", "–"), "num"),
                     _td(info.get("chosen"), "num"), _td(info.get("replays", info.get("quota")), "num"),
                     _td(info.get("at_risk"), "num")] for name, info in versions.items()]
    item_rows = [[_td(item.get("id")), _td(item.get("source")), _td(item.get("replays", "–"), "num"),
                  _td(_num(item.get("score"), 2), "num"), _td(item.get("reason"))]
                 for item in (replay.get("items") or [])[:20]]
    return (f"<p class='sub'>{_e(summary)}</p>"
            + _table(["data version", "history", "known", "replayed", "replays (quota)", "at risk"], version_rows)
            + (_table(["item", "source", "replays", "margin", "why"], item_rows) if item_rows else ""))


def render_report(evaluation: dict[str, Any], title: str = "Evaluation report") -> str:
    """The whole report as one HTML document."""
    lineage = evaluation.get("lineage") or {}
    baseline = (lineage.get("baseline") or {}).get("described_as", "no previous version")
    data_version = (lineage.get("data") or {}).get("data_version", "unknown")
    sections = [
        ("Scores", _plots(evaluation)),
        ("Every metric", _metrics_table(evaluation)),
        ("Worst regressions", _regressions(evaluation)),
        ("Forgetting", _forgetting(evaluation)),
        ("Replay", _replay(evaluation)),
        ("Examples", _examples(evaluation)),
        ("Lineage", _lineage(evaluation)),
    ]
    body = "".join(f"<h2>{_e(name)}</h2>{content}" for name, content in sections)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head><body><main><h1>{_e(title)}</h1>"
        f"<div class='sub'>candidate vs {_e(baseline)} · data version {_e(str(data_version)[:16])}"
        f" · {_e(evaluation.get('created', ''))}</div>"
        f"{_verdict(evaluation)}{_cards(evaluation)}{body}</main></body></html>"
    )


def write_report_html(evaluation: dict[str, Any], output_dir: Path, title: str = "Evaluation report") -> Path:
    """Render the report into output_dir/report.html and return its path."""
    path = Path(output_dir) / REPORT_FILE
    path.write_text(render_report(evaluation, title), encoding="utf-8")
    return path
