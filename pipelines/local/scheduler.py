"""Run a step graph as SageMaker Pipelines does: every step whose dependencies are done starts at once (up to the
parallelism limit); after a failure the running steps finish and nothing new starts.

A step is skipped (never started, so never listed) when a dependency was skipped or the condition branch it sits
in was not taken. https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-overview.html (the DAG is the data
dependencies plus DependsOn); `ParallelismConfiguration.MaxParallelExecutionSteps` bounds the concurrency.
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Mapping

from pipelines.local.validation import PlannedStep

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED = "pending", "running", "succeeded", "failed", "skipped"


def run_graph(
    plan: Mapping[str, PlannedStep],
    run_step: Callable[[str], bool],
    branch_taken: Callable[[str], bool | None],
    limit: int,
    done: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Run every step of `plan` not already in `done` ({name: SUCCEEDED | SKIPPED}); `run_step(name)` runs in a
    worker thread and says whether the step succeeded; `branch_taken(condition)` is a finished condition's outcome.
    Returns each step's state; PENDING ones never started (a failure stopped the run, or a cycle)."""
    state = {name: (done or {}).get(name, PENDING) for name in plan}
    running: dict[Future[bool], str] = {}
    failed = False
    with ThreadPoolExecutor(max_workers=max(1, limit), thread_name_prefix="step") as pool:
        while True:
            if not failed:
                _start_ready(plan, state, running, pool, run_step, branch_taken, limit)
            if not running:
                return state
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                succeeded = future.result()
                state[name] = SUCCEEDED if succeeded else FAILED
                failed = failed or not succeeded


def _start_ready(plan: Mapping[str, PlannedStep], state: dict[str, str], running: dict[Future[bool], str],
                 pool: ThreadPoolExecutor, run_step: Callable[[str], bool],
                 branch_taken: Callable[[str], bool | None], limit: int) -> None:
    progress = True
    while progress:  # skipping a step can make its dependents decidable in the same pass
        progress = False
        for name, item in plan.items():  # definition order breaks ties
            if state[name] != PENDING or any(state[dep] in (PENDING, RUNNING, FAILED) for dep in item.depends_on):
                continue
            skipped_dependency = any(state[dep] == SKIPPED for dep in item.depends_on)
            off_branch = item.guard is not None and branch_taken(item.guard[0]) is not item.guard[1]
            if skipped_dependency or off_branch:
                state[name] = SKIPPED
                progress = True
            elif len(running) < limit:
                state[name] = RUNNING
                running[pool.submit(run_step, name)] = name
