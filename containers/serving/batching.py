"""One generation worker fed by a bounded queue: short requests first, concurrent ones in one call.

Generation runs one call at a time (the model is not thread-safe and a CPU has no room for more). Each
request is a job with a cost (its prompt tokens plus the tokens it may generate); the worker takes the
cheapest waiting job, so a long prompt never holds up the short ones queued behind it, and a job that
has seen `aging` times its own cost of other work start since it was queued goes next (oldest first),
so long ones are not starved either. Jobs waiting
with the same generation parameters and a similar cost (at most twice the first one's) join its call,
up to `max_batch_inputs` inputs. A full queue refuses new jobs (QueueFull); a job whose caller stopped
waiting is dropped from the queue. Standard library only: it ships beside serve.py in the image.
"""
from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Generate = Callable[[list[Any], dict[str, Any]], list[Any]]


class QueueFull(RuntimeError):
    """The queue holds `max_queue` jobs already."""


class WaitTimeout(TimeoutError):
    """The caller's time ran out (`started` says whether generation had begun)."""

    def __init__(self, message: str, started: bool) -> None:
        super().__init__(message)
        self.started = started


@dataclass
class Job:
    """One request's inputs; after it ran, `result` or `error`, and what went ahead of it while it waited."""

    inputs: list[Any]
    parameters: dict[str, Any]
    cost: int
    seq: int
    queued_at_start: int  # the worker's started-jobs count when this job was queued
    queued_at_cost: int  # the worker's started-cost total then
    key: str = ""
    started: bool = False
    abandoned: bool = False
    result: list[Any] | None = None
    error: BaseException | None = None
    ahead: int = 0  # jobs started after this one was queued and before it
    cost_ahead: int = 0  # their summed cost
    batch_inputs: int = 0  # inputs of the call it ran in
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.key = json.dumps(self.parameters, sort_keys=True)


class GenerationQueue:
    """Jobs in, results out, on one worker thread (see the module docstring)."""

    def __init__(self, generate: Generate, max_queue: int, max_batch_inputs: int, aging: float = 4.0) -> None:
        self.generate, self.max_queue, self.max_batch_inputs, self.aging = generate, max_queue, max_batch_inputs, aging
        self.waiting: list[Job] = []
        self.started_jobs = 0
        self.started_cost = 0  # the summed cost of every started job
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._worker = threading.Thread(target=self._run, name="generation", daemon=True)
        self._worker.start()

    def submit(self, inputs: list[Any], parameters: dict[str, Any], cost: int) -> Job:
        """Queue a job; QueueFull when `max_queue` jobs wait already."""
        with self._cond:
            if len(self.waiting) >= self.max_queue:
                raise QueueFull(f"{len(self.waiting)} requests are waiting for the model (the queue's limit)")
            job = Job(list(inputs), dict(parameters), max(int(cost), 1), next(self._seq), self.started_jobs,
                      self.started_cost)
            self.waiting.append(job)
            self._cond.notify_all()
            return job

    def wait(self, job: Job, timeout: float) -> list[Any]:
        """The job's result (its error raised); WaitTimeout after `timeout` seconds (a waiting job leaves the queue)."""
        if not job.done.wait(timeout):
            with self._cond:
                if not job.started:
                    self.waiting.remove(job)
                    raise WaitTimeout(f"waited {timeout:g} s for the model behind {len(self.waiting)} other "
                                      "request(s)", started=False)
                job.abandoned = True
            raise WaitTimeout(f"generation did not finish within {timeout:g} s", started=True)
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _pick(self) -> list[Job]:
        """The next call's jobs (under the lock): the cheapest (or an overdue) job and its batch mates."""
        overdue = [job for job in self.waiting if self.started_cost - job.queued_at_cost >= self.aging * job.cost]
        first = min(overdue, key=lambda job: job.seq) if overdue else min(self.waiting,
                                                                           key=lambda job: (job.cost, job.seq))
        batch, inputs = [first], len(first.inputs)
        for job in sorted(self.waiting, key=lambda job: (job.cost, job.seq)):
            if job is first or job.key != first.key or job.cost > 2 * first.cost:
                continue
            if inputs + len(job.inputs) > self.max_batch_inputs:
                break
            batch.append(job)
            inputs += len(job.inputs)
        for job in batch:
            self.waiting.remove(job)
        for job in batch:
            job.started, job.batch_inputs = True, inputs
            job.ahead = self.started_jobs - job.queued_at_start
            job.cost_ahead = self.started_cost - job.queued_at_cost
        self.started_jobs += len(batch)
        self.started_cost += sum(job.cost for job in batch)
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self.waiting))
                batch = self._pick()
            self._serve(batch)

    def _serve(self, batch: list[Job]) -> None:
        """Run a call for the batch; when it fails, each job again alone, so one bad input fails only its own."""
        try:
            results = self.generate([item for job in batch for item in job.inputs], batch[0].parameters)
        except Exception as error:  # noqa: BLE001 (handed to the waiting request)
            if len(batch) == 1:
                batch[0].error = error
                batch[0].done.set()
                return
            for job in batch:
                self._serve([job])
            return
        position = 0
        for job in batch:
            job.result = results[position:position + len(job.inputs)]
            position += len(job.inputs)
            job.done.set()
