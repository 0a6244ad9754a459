"""The screens' contents: one function per screen, returning what its template shows.

Everything is read through the APIs (pipelines/ui/reads.py and the CLI's own modules); a part that fails says
why in its place (``problems``) instead of failing the page.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from pipelines import s3_layout
from pipelines.commands.compare import verdict
from pipelines.commands.report import report_uri
from pipelines.deploy.stage_status import stage_status
from pipelines.deploy.stages import stages
from pipelines.inventory_summary import INVENTORY_KEY, describe_inventory, read_inventory_summary
from pipelines.registry_ops import ModelVersion
from pipelines.ui import charts, reads
from pipelines.ui.state import UiState

LINEAGE_SHOWN = 10  # ancestors on a version's page (`continuum lineage VERSION` prints them all)


def _attempt(problems: list[str], what: str, read: Callable[[], Any], default: Any) -> Any:
    """``read()``, or ``default`` with the error noted for the page (AWS and the runtime say what went wrong)."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - shown on the page, never a traceback
        problems.append(f"{what}: {exc}")
        return default


def evaluation_of(state: UiState, version: ModelVersion) -> dict[str, Any]:
    """The evaluation.json a version was registered with ({} when none): read once, it never changes."""
    if not version.metrics_uri:
        return {}
    return reads.read_json(state.s3(), version.metrics_uri, cache=True) or {}


def gate_value(state: UiState, version: ModelVersion) -> float | None:
    metric = evaluation_of(state, version).get("metrics", {}).get(state.config.evaluation.gate.metric, {})
    return metric.get("value")


def home(state: UiState) -> dict[str, Any]:
    from pipelines.notify import notify_alarms, recent

    problems: list[str] = []
    _attempt(problems, "alarms", lambda: notify_alarms(state.backend, state.config), [])  # fired since the last look
    rows = _attempt(problems, "stages", lambda: [stage_status(state.backend, state.config, s) for s in stages(state.config)], [])
    versions = _attempt(problems, "registry", lambda: state.versions(), [])
    return {"stages": rows, "runs": _attempt(problems, "runs", lambda: reads.executions(state.backend, state.config, 8), []),
            "pending": [v for v in versions if v.approval_status == "PendingManualApproval"],
            "versions": versions[:5],
            "notifications": _attempt(problems, "notifications", lambda: recent(state.backend, state.config, 15), []),
            "jobs": state.jobs.recent(5), "problems": problems}


def data(state: UiState) -> dict[str, Any]:
    problems: list[str] = []
    versions = _attempt(problems, "data versions", lambda: reads.data_versions(state.backend, state.config), [])
    selected = versions[0] if versions else None
    quarantine = _attempt(problems, "quarantine", lambda: reads.read_jsonl(state.s3(), selected["quarantine_uri"], 50),
                          []) if selected else []
    return {"versions": versions, "selected": selected, "quarantine": quarantine, "problems": problems}


def runs(state: UiState) -> dict[str, Any]:
    problems: list[str] = []
    return {"runs": _attempt(problems, "executions", lambda: reads.executions(state.backend, state.config, 100), []),
            "pipelines": ["training", "deploy"], "data_source": state.config.data.source, "problems": problems}


def run_detail(state: UiState, pipeline: str, execution_id: str) -> dict[str, Any]:
    detail = reads.execution_detail(state.backend, state.config, pipeline, execution_id)
    return {"run": detail, "graph": charts.step_graph(detail["steps"], detail["levels"])}


def models(state: UiState) -> dict[str, Any]:
    problems: list[str] = []
    versions = _attempt(problems, "registry", lambda: state.versions(), [])
    rows = [{"version": v, "gate": _attempt(problems, f"v{v.version} metrics", lambda v=v: gate_value(state, v), None),
             "parent": v.metadata.get("parent_model_package_arn", "none").rsplit("/", 1)[-1]} for v in versions]
    return {"rows": rows, "gate_metric": state.config.evaluation.gate.metric, "problems": problems,
            "compare_default": (versions[0].version, versions[1].version) if len(versions) > 1 else None}


def model_detail(state: UiState, number: int) -> dict[str, Any]:
    from pipelines.commands.lineage import version_lineage

    problems: list[str] = []
    version = state.version(number)
    evaluation = _attempt(problems, "evaluation", lambda: evaluation_of(state, version), {})
    chain = _attempt(problems, "lineage", lambda: version_lineage(state.sagemaker(), state.s3(), state.group, number,
                                                                  LINEAGE_SHOWN, version), [])
    inventory_uri = version.metadata.get(INVENTORY_KEY)
    summary = _attempt(problems, "inventory", lambda: read_inventory_summary(state.s3(), inventory_uri), None)
    metrics = [{"name": name, **entry, "verdict": verdict(entry)} for name, entry in evaluation.get("metrics", {}).items()]
    return {"version": version, "metrics": metrics, "gate": evaluation.get("gate", {}), "lineage": chain,
            "inventory": summary, "inventory_lines": describe_inventory(summary, inventory_uri, ""),
            "report": report_uri(version.metadata, version.metrics_uri), "problems": problems}


def _flips(cases_path: Any) -> dict[str, list[dict[str, Any]]]:
    """Cases right in B and wrong in A (forgotten) and the reverse (learned), by exact match."""
    found: dict[str, list[dict[str, Any]]] = {"forgotten": [], "learned": []}
    if not cases_path.is_file():
        return found
    for line in cases_path.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        new, old = (case.get(f"{side}_scores", {}).get("exact_match") for side in ("candidate", "baseline"))
        if new is None or old is None or new == old:
            continue
        found["learned" if new > old else "forgotten"].append(case)
    return found


def comparison(state: UiState, result: tuple[dict[str, Any], Any, str, str]) -> dict[str, Any]:
    """A finished comparison: rows per suite metric, per-suite and per-metric plots, regressions, flips."""
    evaluation, output, label_a, label_b = result
    rows = [{"name": name, "suite": e.get("suite") or name, "metric": e.get("metric") or name, "a": e.get("value"),
             "b": e.get("baseline"), "delta": e.get("delta"), "verdict": verdict(e)}
            for name, e in evaluation.get("metrics", {}).items()]
    suites = evaluation.get("suites", {})
    primary = [(name, s.get("primary_metric")) for name, s in suites.items()]
    per_suite = charts.paired_bars(
        "primary metric per suite", tuple(f"{n} {m}" for n, m in primary),
        tuple(suites[n]["metrics"]["candidate"].get(m) for n, m in primary),
        tuple((suites[n]["metrics"].get("baseline") or {}).get(m) for n, m in primary), (label_a, label_b))
    per_metric = [charts.paired_bars(f"{name}: every metric", tuple(s["metrics"]["candidate"]),
                                     tuple(s["metrics"]["candidate"].values()),
                                     tuple((s["metrics"].get("baseline") or {}).get(m) for m in s["metrics"]["candidate"]),
                                     (label_a, label_b)) for name, s in suites.items()]
    regressions = [{"suite": name, **case} for name, s in suites.items() for case in s.get("worst_regressions", [])]
    return {"label_a": label_a, "label_b": label_b, "rows": rows, "per_suite": per_suite, "per_metric": per_metric,
            "regressions": regressions, "flips": {name: s.get("forgetting") for name, s in suites.items()},
            "flip_items": _flips(output / "cases.jsonl"), "output": str(output)}


def benchmarks(state: UiState) -> dict[str, Any]:
    problems: list[str] = []
    keys = _attempt(problems, "suites", lambda: reads.list_keys(state.s3(), s3_layout.benchmarks_uri(state.config) + "/"), [])
    suites = sorted({item["Key"].split("/benchmarks/", 1)[1].split("/")[0] for item in keys})
    versions = sorted(_attempt(problems, "registry", lambda: state.versions(), []),
                      key=lambda v: v.version)
    evaluations = {v.version: _attempt(problems, f"v{v.version}", lambda v=v: evaluation_of(state, v), {}) for v in versions}
    charts_by_suite = []
    names = sorted({entry.get("suite") for e in evaluations.values() for entry in e.get("metrics", {}).values()
                    if entry.get("suite")} | set(suites))
    for suite in names:
        metrics = sorted({entry.get("metric") for e in evaluations.values() for entry in e.get("metrics", {}).values()
                          if entry.get("suite") == suite and not str(entry.get("metric")).endswith("latency_ms")})
        series = tuple((metric, tuple(next((entry["value"] for entry in e.get("metrics", {}).values()
                                            if entry.get("suite") == suite and entry.get("metric") == metric), None)
                                      for e in evaluations.values())) for metric in metrics)
        charts_by_suite.append({"suite": suite, "staged": suite in suites, "svg": charts.lines(
            f"{suite}: each version's results", tuple(f"v{v}" for v in evaluations), series) if series else None})
    return {"suites": suites, "charts": charts_by_suite, "problems": problems}


def deploy(state: UiState) -> dict[str, Any]:
    problems: list[str] = []
    rows = _attempt(problems, "stages", lambda: [stage_status(state.backend, state.config, s) for s in stages(state.config)], [])
    approved = _attempt(problems, "registry", lambda: state.versions("Approved"), [])
    return {"stages": rows, "approved": approved, "alarms": _attempt(problems, "alarms",
                                                                      lambda: reads.alarms(state.backend, state.config), []),
            "problems": problems}


def rollback_plan(state: UiState) -> dict[str, Any]:
    from pipelines.deploy.rollback import plan

    current, target = plan(state.sagemaker(), state.config, stages(state.config), None)
    return {"current": current, "target": target, "stages": stages(state.config)}


def _share_of_bar(check: dict[str, Any]) -> float | None:
    """A check's value as a share of its threshold, so checks of every unit share one plot."""
    value, threshold = check.get("value"), check.get("threshold")
    return None if value is None or not threshold else value / threshold


def monitoring(state: UiState) -> dict[str, Any]:
    problems: list[str] = []
    sections = []
    for stage in stages(state.config):
        reports = _attempt(problems, f"{stage.name} reports",
                           lambda stage=stage: reads.monitoring_reports(state.backend, state.config, stage.endpoint_name), [])
        names = sorted({check["name"] for report in reports for check in report.get("checks", [])})
        series = tuple((name, tuple(next((_share_of_bar(c) for c in r.get("checks", []) if c["name"] == name), None)
                                    for r in reports)) for name in names)
        times = tuple(str(r.get("generated_at", ""))[5:16] for r in reports)
        sections.append({"stage": stage, "reports": list(reversed(reports)),
                         "chart": charts.lines(f"{stage.endpoint_name}: drift and quality checks", times, series,
                                               "value / threshold (above 1: violated)")
                         if reports else None,
                         "latest": reports[-1] if reports else None})
    return {"sections": sections, "alarms": _attempt(problems, "alarms", lambda: reads.alarms(state.backend, state.config), []),
            "problems": problems}


def feedback(state: UiState, query: str = "") -> dict[str, Any]:
    """The newest captured exchanges of each stage (those whose prompt or answer holds ``query``, among the newest
    500, when one is given) and the feedback given so far."""
    from pipelines.feedback import list_feedback

    problems: list[str] = []
    exchanges = []
    needle = query.strip().lower()
    for stage in stages(state.config):
        found = _attempt(problems, f"{stage.name} capture", lambda stage=stage: reads.captured_exchanges(
            state.backend, state.config, stage.endpoint_name, 500 if needle else 25), [])
        exchanges += [e for e in found if needle in e["prompt"].lower() or needle in e["answer"].lower()][:25]
    given = _attempt(problems, "feedback", lambda: list_feedback(state.backend, state.config), [])
    marked = {(item.endpoint, item.event_id, item.index) for item in given}
    for exchange in exchanges:
        exchange["marked"] = (exchange["endpoint"], exchange["event_id"], exchange["index"]) in marked
    return {"exchanges": exchanges, "given": list(reversed(given)), "query": query, "problems": problems}
