"""What a person can change from the dashboard, each through the CLI's own functions, after the role check.

Quick changes (approve, feedback) happen in the request; long ones (a run, a deploy, a rollback, a comparison)
become jobs whose page polls until they end.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.notify import notify, notify_run_outcome
from pipelines.registry_ops import set_approval
from pipelines.ui.jobs import Job
from pipelines.ui.state import UiState

DECISIONS = {"approve": "Approved", "reject": "Rejected"}


def approve(state: UiState, number: int, decision: str, comment: str) -> str:
    """Approve or reject a version with the person's comment; returns what happened."""
    state.identity.require("approve")
    if decision not in DECISIONS:
        raise ValueError(f"decision must be approve or reject, not {decision!r}")
    version = state.version(number)
    status = DECISIONS[decision]
    text = comment.strip() or f"{status.lower()} in continuum ui"
    set_approval(state.sagemaker(), version.arn, status, f"{text} (by {state.identity.name})")
    notify(state.backend, state.config, "approval", f"version {version.version} {status} by {state.identity.name}", text)
    return f"version {version.version}: {status}"


def start_run(state: UiState, kind: str, data_source: str, parameters_text: str) -> Job:
    """A training (or deploy) pipeline run with the given data and NAME=VALUE parameters, as `continuum run`."""
    from pipelines.cli_support import check_parameters, parse_parameters
    from pipelines.config import load_config
    from pipelines.execution import run_staged

    state.identity.require("deploy" if kind == "deploy" else "run")
    if kind not in ("training", "deploy"):
        raise ValueError(f"pipeline must be training or deploy, not {kind!r}")
    pairs = [line.strip() for line in parameters_text.replace(",", "\n").splitlines() if line.strip()]
    try:
        parameters = parse_parameters(pairs)
    except SystemExit as exc:  # the CLI's parser exits; here it is a message
        raise ValueError(str(exc)) from None
    config = state.config
    source = data_source.strip()
    if source and source != config.data.source and kind == "training":
        config_path = state.extra.get("config_path")
        config = load_config(config_path, {"data.source": source if "://" in source else str(Path(source).resolve())})
    check_parameters(kind, config, parameters)  # as `continuum run`: a wrong name or type before anything starts

    def work(job: Job) -> Any:
        outcome = run_staged(kind, config, state.backend, parameters, echo=job.echo, wait=state.backend.is_local)
        job.echo(f"{outcome.pipeline_name} {outcome.execution_id}: {outcome.status}")
        if kind == "training":
            notify_run_outcome(state.backend, state.config, outcome)
        if outcome.status == "Failed":
            job.status = "Failed"
            job.message = outcome.failure_reason or "the run failed"
        job.link = f"/runs/{outcome.pipeline_name}/{outcome.execution_id}" if state.backend.is_local else "/runs"
        return outcome

    return state.jobs.start(f"{kind} pipeline run", work, link="/runs")


def deploy(state: UiState) -> Job:
    """The deploy pipeline for the latest Approved version (staging, smoke test, production), as `continuum deploy`."""
    return start_run(state, "deploy", "", "")


def rollback(state: UiState, reason: str) -> Job:
    """Every stage back to the previous Approved version, as `continuum rollback`; the version left is rejected."""
    from pipelines.deploy.rollback import rollback as roll_back
    from pipelines.deploy.stages import stages

    state.identity.require("rollback")
    text = reason.strip() or f"rolled back in continuum ui by {state.identity.name}"

    def work(job: Job) -> Any:
        result = roll_back(state.backend, state.config, stages(state.config), None, text, echo=job.echo)
        job.echo(f"rolled back from version {result.from_version} to {result.to_version} in {result.seconds:.1f}s")
        notify(state.backend, state.config, "rollback",
               f"rolled back from version {result.from_version} to {result.to_version} by {state.identity.name}", text)
        return result

    return state.jobs.start("rollback", work, link="/deploy")


def compare(state: UiState, a: str, b: str) -> Job:
    """Both versions on the staged suites, side by side (as `continuum compare A B`); anyone may look."""
    from pipelines.commands.compare import compare_versions

    if a.strip() == b.strip():
        raise ValueError("pick two different versions to compare")
    job = state.jobs.start(f"compare v{a} with v{b}",
                           lambda job: compare_versions(state.backend, state.config, state.home, a, b, echo=job.echo))
    job.link = f"/compare/{job.id}"
    return job


def give_feedback(state: UiState, endpoint: str, event_id: str, index: int, right_answer: str, comment: str) -> str:
    """Mark a captured answer wrong with the right one: stored with its provenance, used from the next run on."""
    from pipelines.feedback import record_feedback
    from pipelines.ui.reads import captured_exchanges

    state.identity.require("feedback")
    exchange = next((item for item in captured_exchanges(state.backend, state.config, endpoint, 500)
                     if item["event_id"] == event_id and item["index"] == index), None)
    if exchange is None:
        raise LookupError(f"no captured exchange {event_id}#{index} on {endpoint}")
    item = record_feedback(state.backend, state.config, exchange, right_answer, state.identity.name, comment)
    notify(state.backend, state.config, "feedback", f"answer marked wrong on {endpoint} by {state.identity.name}",
           f"{item.prompt} — captured: {item.wrong_answer!r}, right: {item.right_answer!r}")
    return f"feedback {item.id} stored: the next training run trains on it and the feedback suite checks it"
